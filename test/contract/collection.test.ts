import { openTestStore } from '../helpers/catalog.js';
import { describeCollectionContract } from './collection.contract.js';

describeCollectionContract('SQLite table (embedded)', () => openTestStore('embedded'));
describeCollectionContract('MongoDB collection', () => openTestStore('mongo'));
