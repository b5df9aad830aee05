import { openTestStore } from '../helpers/catalog.js';
import { describeHeartbeatStoreContract } from './heartbeat-store.contract.js';

describeHeartbeatStoreContract('embedded', () => openTestStore('embedded'));
describeHeartbeatStoreContract('mongo (FerretDB)', () => openTestStore('mongo'));
