import { expect } from 'chai';
import { parseCatalogUrl, resolveClientConfig } from '../../../src/client/config.js';
import { ClientError, EXIT_CODES, kindOfStatus } from '../../../src/client/errors.js';
import { parseAssignments } from '../../../src/client/input.js';
import { JsonArrayWriter, TableWriter, cell } from '../../../src/client/output.js';

function failure(fn: () => unknown): ClientError {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(ClientError);
    return error as ClientError;
  }
  throw new Error('expected a ClientError');
}

describe('CLI client parts', () => {
  it('maps HTTP statuses to exit statuses', () => {
    const codes = [400, 401, 403, 404, 409, 412, 413, 422, 429, 500, 503].map(
      (status) => EXIT_CODES[kindOfStatus(status)],
    );
    expect(codes).to.deep.equal([1, 4, 4, 2, 5, 5, 1, 1, 3, 3, 3]);
  });

  it('accepts http(s) catalog URLs, keeps a path prefix, refuses credentials, queries and other schemes', () => {
    expect(parseCatalogUrl('http://127.0.0.1:8080/')).to.equal('http://127.0.0.1:8080');
    expect(parseCatalogUrl('https://gw.example/catalog//')).to.equal('https://gw.example/catalog');
    expect(failure(() => parseCatalogUrl('http://u:secret@h')).message).not.to.include('secret');
    for (const bad of ['ftp://h', 'file:///etc/passwd', 'http://h/?a=1', 'http://h/#x', 'not a url'])
      expect(failure(() => parseCatalogUrl(bad)).kind).to.equal('usage');
  });

  it('takes the token from the flag, then the file flag, then the environment; never names it', () => {
    const env = { AIOS_CATALOG_TOKEN: 'from-env' };
    expect(resolveClientConfig({ token: 'from-flag' }, env).token).to.equal('from-flag');
    expect(resolveClientConfig({}, env).token).to.equal('from-env');
    expect(resolveClientConfig({}, {}).token).to.equal(undefined);
    const bad = failure(() => resolveClientConfig({ token: 'two words' }, {}));
    expect(bad.message).to.equal('--token is empty or has characters a token cannot have');
    expect(resolveClientConfig({ token: 't' }, { AIOS_CATALOG_URL: 'http://10.0.0.1' }).warning).to.match(
      /in clear/,
    );
    expect(resolveClientConfig({ token: 't' }, {}).warning).to.equal(undefined);
    expect(failure(() => resolveClientConfig({ timeout: '-1' }, {})).kind).to.equal('usage');
  });

  it('reads --set values as JSON when they parse, else as text', () => {
    expect(
      parseAssignments(['a=3', 'b=true', 'c=["x"]', 'd=plain', 'e.f={"k":1}', 'g=a=b'], false),
    ).to.deep.equal({
      a: 3,
      b: true,
      c: ['x'],
      d: 'plain',
      'e.f': { k: 1 },
      g: 'a=b',
    });
    expect(parseAssignments(['a=3'], true)).to.deep.equal({ a: '3' });
    expect(failure(() => parseAssignments(['=3'], false)).kind).to.equal('usage');
  });

  it('writes JSON arrays in batches that parse whole, and tables without control characters', () => {
    const json = new JsonArrayWriter();
    const text = json.render([{ a: 1 }, { a: 2 }]) + json.render([]) + json.render([{ a: 3 }]) + json.end();
    expect(JSON.parse(text)).to.deep.equal([{ a: 1 }, { a: 2 }, { a: 3 }]);
    expect(JSON.parse(new JsonArrayWriter().end())).to.deep.equal([]);

    expect(cell('evil\u001b[2J\u009bname')).to.equal('evil?[2J?name');
    const table = new TableWriter<{ n: string }>([
      { header: 'NAME', value: (r) => r.n, max: 6 },
      { header: 'X', value: () => 1 },
    ]);
    expect(table.render([{ n: 'ab' }])).to.equal('NAME  X\nab    1\n');
    expect(table.render([{ n: 'abcdefghij' }])).to.equal('abc…  1\n');
  });
});
