import { expect } from 'chai';
import { ConfigError } from '../../../src/shared/config/env.js';
import { parseAuthConfig } from '../../../src/oci/auth/auth-config.js';
import { ANONYMOUS, Policy } from '../../../src/oci/auth/policy.js';
import { parseScopes, ScopeError } from '../../../src/oci/auth/scopes.js';

describe('token mode: config file, namespaces and scopes', () => {
  describe('config validation', () => {
    const refuse = (document: unknown) => {
      try {
        parseAuthConfig(document, 'auth.yaml');
      } catch (error) {
        expect(error).to.be.instanceOf(ConfigError);
        const message = (error as Error).message;
        expect(message).to.not.include('\n');
        return message;
      }
      throw new Error('accepted');
    };

    it('refuses unknown keys with one line naming the key', () => {
      expect(refuse({ service: 's', tokens_ttl: 5 })).to.equal(
        'invalid configuration: REGISTRY_AUTH_CONFIG auth.yaml: unknown key tokens_ttl',
      );
      expect(refuse({ service: 's', namespaces: [{ prefix: 'a/', quota: 1 }] })).to.equal(
        'invalid configuration: REGISTRY_AUTH_CONFIG auth.yaml: unknown key namespaces.0.quota',
      );
      expect(
        refuse({
          service: 's',
          namespaces: [{ prefix: 'a/', rules: [{ subjects: ['x'], actions: ['pull'], who: 1 }] }],
        }),
      ).to.include('unknown key namespaces.0.rules.0.who');
    });

    it('refuses wrong values, a missing service and duplicate prefixes', () => {
      expect(refuse({})).to.include('service is required');
      expect(refuse({ service: 's', token_ttl_seconds: 'long' })).to.include(
        'token_ttl_seconds must be integer',
      );
      expect(refuse({ service: 's', namespaces: [{ prefix: 'Bad Prefix/' }] })).to.include(
        'namespaces.0.prefix',
      );
      expect(
        refuse({
          service: 's',
          namespaces: [{ prefix: 'a/', rules: [{ subjects: ['x'], actions: ['write'] }] }],
        }),
      ).to.include('namespaces.0.rules.0.actions.0');
      expect(refuse({ service: 's', admins: ['robot$ci'] })).to.include('admins.0');
      expect(refuse({ service: 's', namespaces: [{ prefix: 'a/' }, { prefix: 'a/' }] })).to.include(
        'appears twice',
      );
    });

    it('fills defaults and freezes the result', () => {
      const config = parseAuthConfig({ service: 'reg:5000' }, 'auth.yaml');
      expect(config).to.deep.include({
        service: 'reg:5000',
        issuer: 'reg:5000',
        tokenTtlSeconds: 300,
        admins: [],
      });
      expect(Object.isFrozen(config)).to.equal(true);
    });
  });

  describe('policy', () => {
    const policy = new Policy(
      parseAuthConfig(
        {
          service: 's',
          namespaces: [
            { prefix: 'home/', rules: [{ subjects: ['ops'], actions: ['pull'] }] },
            { prefix: 'home/alice/', rules: [{ subjects: ['alice'], actions: ['pull', 'push'] }] },
            { prefix: 'home/alice/shared', public: true, rules: [{ subjects: ['bob'], actions: ['push'] }] },
          ],
          admins: ['root'],
        },
        'test',
      ),
    );
    const granted = (name: string | undefined, repository: string) =>
      [...policy.granted(name === undefined ? ANONYMOUS : { name }, repository)].sort();

    it('lets the longest prefix win, and a prefix without / mean that repository and below', () => {
      expect(granted('ops', 'home/carol/app')).to.deep.equal(['pull']);
      expect(granted('ops', 'home/alice/app')).to.deep.equal([]);
      expect(granted('alice', 'home/alice/app')).to.deep.equal(['pull', 'push']);
      expect(granted('bob', 'home/alice/shared')).to.deep.equal(['pull', 'push']);
      expect(granted('bob', 'home/alice/shared/debug')).to.deep.equal(['pull', 'push']);
      expect(granted('bob', 'home/alice/shared-not')).to.deep.equal([]);
      expect(granted(undefined, 'home/alice/shared')).to.deep.equal(['pull']);
    });

    it('denies by default outside every namespace, except to admins', () => {
      expect(granted('alice', 'other/app')).to.deep.equal([]);
      expect(granted('root', 'other/app')).to.deep.equal(['delete', 'pull', 'push']);
      // An admin's name on a robot grants nothing extra.
      expect([
        ...policy.granted({ name: 'root', robot: { prefix: 'x/', actions: ['pull'] } }, 'other/app'),
      ]).to.deep.equal([]);
    });

    it('gives a robot its own actions inside its prefix only', () => {
      const robot = {
        name: 'robot_ci',
        robot: { prefix: 'home/alice/', actions: ['pull', 'push'] as const },
      };
      expect([...policy.granted(robot, 'home/alice/app')].sort()).to.deep.equal(['pull', 'push']);
      expect([...policy.granted(robot, 'home/bob/app')]).to.deep.equal([]);
    });
  });

  describe('scopes', () => {
    it('parses repository and catalog scopes, several per parameter', () => {
      expect(
        parseScopes(['repository:a/b:pull,push registry:catalog:*', 'repository:host/x:*']),
      ).to.deep.equal([
        { type: 'repository', name: 'a/b', actions: ['pull', 'push'] },
        { type: 'registry', name: 'catalog', actions: ['*'] },
        { type: 'repository', name: 'host/x', actions: ['*'] },
      ]);
    });

    it('refuses malformed scopes', () => {
      for (const scope of [
        'a',
        'repository:a',
        'repository::pull',
        'repository:A:pull',
        'x:y:pull',
        'repository:a:',
      ]) {
        expect(() => parseScopes([scope]), scope).to.throw(ScopeError);
      }
      expect(() => parseScopes([Array.from({ length: 40 }, () => 'repository:a:pull').join(' ')])).to.throw(
        ScopeError,
      );
    });
  });
});
