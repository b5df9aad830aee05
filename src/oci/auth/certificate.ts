/**
 * A self-signed X.509 certificate for a token signing key, made with @peculiar/x509: tokens carry
 * it as `x5c`, and CNCF Distribution's `auth.token.rootcertbundle` is given the same PEM, so it
 * trusts our tokens without knowing anything about our key ids. No extended key usage is set
 * (Go's verifier would otherwise demand serverAuth); validity is ten years.
 */
import 'reflect-metadata';
import { createHash, createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const TEN_YEARS_MS = 10 * 365 * 86_400_000;

/** Creates the certificate of `privateKey` (EC P-256); returns it as PEM. */
export async function selfSignedCertificate(
  privateKey: KeyObject,
  subject: string,
  now: number,
): Promise<string> {
  const { subtle } = webcrypto;
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const keys = {
    privateKey: await subtle.importKey('pkcs8', pkcs8, ALGORITHM, false, ['sign']),
    publicKey: await subtle.importKey('spki', spki, ALGORITHM, true, ['verify']),
  };
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    // Positive and unique per key: derived from the public key.
    serialNumber: `01${createHash('sha256').update(spki).digest('hex').slice(0, 30)}`,
    name: `CN=${subject.replace(/[,+="\\<>;#]/g, '_')}`,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + TEN_YEARS_MS),
    signingAlgorithm: ALGORITHM,
    keys: keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'],
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return certificate.toString('pem');
}

/** The base64 DER of a PEM certificate, as `x5c` holds it. */
export function pemToDerBase64(pem: string): string {
  return pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
}
