// The --tls-* flags of `canopy serve shard|router` and `canopy query`, and
// the --etcd-tls-* / --etcd-user flags (password from $ETCD_PASSWORD) of
// every command that talks to etcd.
import { accessSync, constants } from 'node:fs';
import type { Command } from 'commander';

import type { ServerTlsOptions, TlsFiles } from '../wire/tls';
import type { EtcdClientOptions } from '../registry/etcd-client';

/** etcd's password for --etcd-user: an environment variable, so it shows in no process listing. */
export const ETCD_PASSWORD_ENV = 'ETCD_PASSWORD';

export interface TlsFlags {
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly tlsCa?: string;
  readonly tlsRequireClientCert?: boolean;
}

export interface EtcdSecurityFlags {
  readonly etcdTlsCert?: string;
  readonly etcdTlsKey?: string;
  readonly etcdTlsCa?: string;
  readonly etcdUser?: string;
}

/** `routerNote`: the router also dials shards with these files (its cert is its client certificate). */
export function addServerTlsFlags(command: Command, routerNote = false): Command {
  const toShards = routerNote ? '; also this router\'s client certificate towards shard nodes that require one' : '';
  return command
    .option('--tls-cert <file>', `serve TLS: PEM certificate chain${toShards}`)
    .option('--tls-key <file>', 'serve TLS: PEM private key of --tls-cert')
    .option('--tls-ca <file>', `PEM CA that signs client certificates (with --tls-require-client-cert)${routerNote ? ' and shard nodes\' certificates' : ''}`)
    .option('--tls-require-client-cert', 'mutual TLS: refuse clients without a certificate signed by --tls-ca');
}

export function addClientTlsFlags(command: Command): Command {
  return command
    .option('--tls-ca <file>', 'dial with TLS, verifying the server with this PEM CA')
    .option('--tls-cert <file>', 'mutual TLS: PEM client certificate (with --tls-key)')
    .option('--tls-key <file>', 'mutual TLS: PEM private key of --tls-cert');
}

/** The server's TLS settings; undefined (plaintext) when no --tls-* flag is given. */
export function serverTlsFromFlags(flags: TlsFlags): ServerTlsOptions | undefined {
  if (flags.tlsCert === undefined && flags.tlsKey === undefined) {
    if (flags.tlsCa !== undefined || flags.tlsRequireClientCert === true) {
      throw new Error('--tls-ca and --tls-require-client-cert need --tls-cert and --tls-key');
    }
    return undefined;
  }
  if (flags.tlsCert === undefined || flags.tlsKey === undefined) throw new Error('--tls-cert and --tls-key go together: give both or neither');
  requireReadable({ '--tls-cert': flags.tlsCert, '--tls-key': flags.tlsKey, '--tls-ca': flags.tlsCa });
  return { certFile: flags.tlsCert, keyFile: flags.tlsKey, caFile: flags.tlsCa, requireClientCert: flags.tlsRequireClientCert === true };
}

/** A client's TLS settings; undefined (plaintext) when no --tls-* flag is given. */
export function clientTlsFromFlags(flags: TlsFlags): TlsFiles | undefined {
  if (flags.tlsCert === undefined && flags.tlsKey === undefined && flags.tlsCa === undefined) return undefined;
  requireReadable({ '--tls-cert': flags.tlsCert, '--tls-key': flags.tlsKey, '--tls-ca': flags.tlsCa });
  return { certFile: flags.tlsCert, keyFile: flags.tlsKey, caFile: flags.tlsCa };
}

export function addEtcdSecurityFlags(command: Command): Command {
  return command
    .option('--etcd-tls-ca <file>', 'etcd over TLS: PEM CA that signs etcd\'s certificate')
    .option('--etcd-tls-cert <file>', 'etcd over TLS: PEM client certificate (etcd --client-cert-auth)')
    .option('--etcd-tls-key <file>', 'etcd over TLS: PEM private key of --etcd-tls-cert')
    .option('--etcd-user <name>', `etcd user (password from $${ETCD_PASSWORD_ENV})`);
}

/** The TLS and auth parts of the etcd client's options, from the flags and $ETCD_PASSWORD. */
export function etcdSecurityFromFlags(flags: EtcdSecurityFlags, env: NodeJS.ProcessEnv = process.env): Pick<EtcdClientOptions, 'tls' | 'auth'> {
  const anyTls = flags.etcdTlsCa !== undefined || flags.etcdTlsCert !== undefined || flags.etcdTlsKey !== undefined;
  const tls = anyTls ? { caFile: flags.etcdTlsCa, certFile: flags.etcdTlsCert, keyFile: flags.etcdTlsKey } : undefined;
  requireReadable({ '--etcd-tls-ca': flags.etcdTlsCa, '--etcd-tls-cert': flags.etcdTlsCert, '--etcd-tls-key': flags.etcdTlsKey });
  if (flags.etcdUser === undefined) return { tls };
  const password = env[ETCD_PASSWORD_ENV];
  if (password === undefined || password === '') throw new Error(`--etcd-user ${flags.etcdUser} needs the password in $${ETCD_PASSWORD_ENV}`);
  return { tls, auth: { user: flags.etcdUser, password } };
}

/** Every file given must be there to read: a typo is a usage error at start, not a failed connection later. */
function requireReadable(files: Readonly<Record<string, string | undefined>>): void {
  for (const [flag, file] of Object.entries(files)) {
    if (file === undefined) continue;
    try {
      accessSync(file, constants.R_OK);
    } catch (err) {
      throw new Error(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot be read'}`, { cause: err });
    }
  }
}
