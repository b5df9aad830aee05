import { expect } from 'chai';
import { prefixRange } from '../../../../src/catalog/store/regex-prefix.js';

describe('regex prefix ranges (a prefix regex is an index range scan)', () => {
  const range = (pattern: string, flags = '') => prefixRange(pattern, flags);

  it('turns an anchored literal into an exact half-open range', () => {
    expect(range('^team-a/')).to.deep.equal({ range: { from: 'team-a/', to: 'team-a0' }, exact: true });
    expect(range('^team-a/.*')).to.deep.include({ exact: true });
    expect(range('^a\\.b')).to.deep.equal({ range: { from: 'a.b', to: 'a.c' }, exact: true });
  });

  it('narrows without deciding when something follows the literal', () => {
    expect(range('^team-a/api-\\d+$')).to.deep.equal({
      range: { from: 'team-a/api-', to: 'team-a/api.' },
      exact: false,
    });
    // An optional last character is not part of the prefix.
    expect(range('^abc?')).to.deep.equal({ range: { from: 'ab', to: 'ac' }, exact: false });
    expect(range('^ab*c')).to.deep.equal({ range: { from: 'a', to: 'b' }, exact: false });
    expect(range('^ab{0,2}')).to.deep.include({ range: { from: 'a', to: 'b' } });
  });

  it('has no range for unanchored, alternated, case-insensitive or multi-line patterns', () => {
    expect(range('team-a/')).to.equal(undefined);
    expect(range('^a|b')).to.equal(undefined);
    expect(range('^(a|b)')).to.equal(undefined);
    expect(range('^team', 'i')).to.equal(undefined);
    expect(range('^team', 'm')).to.equal(undefined);
    expect(range('^.*')).to.equal(undefined);
    expect(range('^\\d')).to.equal(undefined);
    // `|` inside a class is a literal there, but the class ends the prefix.
    expect(range('^ab[|]')).to.deep.include({ range: { from: 'ab', to: 'ac' }, exact: false });
  });

  it('keeps the order of the stores for any code point', () => {
    const r = range('^caf\u00e9')!;
    expect(r.range.to).to.equal('caf\u00ea');
    const astral = range('^x\u{1f600}')!;
    expect(astral.range.to).to.equal('x\u{1f601}');
    expect(range('^\u{10ffff}')).to.equal(undefined);
    for (const key of ['team-a/', 'team-a/x', 'team-a/\u{10fff0}', 'team-a/zzz'])
      expect(key >= range('^team-a/')!.range.from && key < range('^team-a/')!.range.to).to.equal(true);
    for (const key of ['team-a', 'team-a0', 'team-b/x', 'team-a.'])
      expect(key >= range('^team-a/')!.range.from && key < range('^team-a/')!.range.to).to.equal(false);
  });
});
