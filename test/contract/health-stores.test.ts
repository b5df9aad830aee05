import { openTestStore } from '../helpers/catalog.js';
import { describeHealthStoreContract } from './health-store.contract.js';

describeHealthStoreContract('EmbeddedHealthStore', () => openTestStore('embedded'), '');
describeHealthStoreContract('MongoHealthStore', () => openTestStore('mongo'), 'container_registry_');
