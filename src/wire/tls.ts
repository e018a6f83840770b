// TLS for every Canopy gRPC hop: PEM files read once, at start, into the
// credentials a server listens with and a client (a router calling shards,
// `canopy query`, the TypeScript client) dials with. A file that cannot be
// read fails the start naming the flag, never the first call.
import { readFileSync } from 'node:fs';

import * as grpc from '@grpc/grpc-js';

export interface TlsFiles {
  /** PEM certificate chain this side presents (a server's; a client's for mutual TLS). */
  readonly certFile?: string;
  /** PEM private key of `certFile`. */
  readonly keyFile?: string;
  /** PEM CA bundle that verifies the other side; omitted: the system roots (clients only). */
  readonly caFile?: string;
}

export interface ServerTlsOptions extends TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** Refuse clients that do not present a certificate signed by `caFile` (mutual TLS). */
  readonly requireClientCert?: boolean;
}

/** The PEM bytes of a TLS setting, read once. */
export interface TlsMaterial {
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  readonly ca: Buffer | undefined;
}

/** `flagPrefix` names the files in errors: `--tls` reports `--tls-cert ...`, `--etcd-tls` `--etcd-tls-cert ...`. */
export function readTlsMaterial(files: TlsFiles, flagPrefix = '--tls'): TlsMaterial {
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    throw new Error(`${flagPrefix}-cert and ${flagPrefix}-key go together: give both or neither`);
  }
  return {
    cert: readPem(files.certFile, `${flagPrefix}-cert`),
    key: readPem(files.keyFile, `${flagPrefix}-key`),
    ca: readPem(files.caFile, `${flagPrefix}-ca`),
  };
}

/** Credentials to listen with: TLS when `tls` is given, else plaintext. */
export function serverCredentials(tls: ServerTlsOptions | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  const { cert, key, ca } = readTlsMaterial(tls);
  const requireClientCert = tls.requireClientCert ?? false;
  if (requireClientCert && ca === undefined) {
    throw new Error('--tls-require-client-cert needs --tls-ca: the CA that signs client certificates');
  }
  return grpc.ServerCredentials.createSsl(ca ?? null, [{ cert_chain: cert!, private_key: key! }], requireClientCert);
}

/**
 * Credentials to dial with: TLS when `tls` is given (verifying the server
 * with its CA, presenting its certificate when it has one), else plaintext.
 */
export function channelCredentials(tls: TlsFiles | undefined): grpc.ChannelCredentials {
  if (tls === undefined) return grpc.credentials.createInsecure();
  const { cert, key, ca } = readTlsMaterial(tls);
  return grpc.credentials.createSsl(ca ?? null, key ?? null, cert ?? null);
}

function readPem(file: string | undefined, flag: string): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${flag} ${file}: ${(err as Error).message}`, { cause: err });
  }
}
