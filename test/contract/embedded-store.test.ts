import { openTestStore } from '../helpers/catalog.js';
import { describeRegistryStoreContract } from './registry-store.contract.js';

describeRegistryStoreContract('EmbeddedStore (SQLite + mingo)', () => openTestStore('embedded'));
