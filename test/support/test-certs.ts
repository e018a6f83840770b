// A throwaway certificate authority for TLS tests, made with the `openssl`
// command (Debian package `openssl`): a CA and leaf certificates whose SAN
// covers 127.0.0.1 and localhost, each usable as a server and a client
// certificate. Everything lives in one temporary folder.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** PEM file paths of one certificate and its key, with the CA that signed it. */
export interface CertFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** The `--tls-cert --tls-key --tls-ca` flags of a canopy server or client presenting `c`. */
export function tlsFlags(c: CertFiles): string[] {
  return ['--tls-cert', c.certFile, '--tls-key', c.keyFile, '--tls-ca', c.caFile];
}

const VALID_DAYS = '2';

function openssl(args: readonly string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export class TestCa {
  private constructor(
    readonly dir: string,
    readonly name: string,
  ) {}

  get caFile(): string {
    return path.join(this.dir, `${this.name}-ca.crt`);
  }

  private get caKeyFile(): string {
    return path.join(this.dir, `${this.name}-ca.key`);
  }

  /** A new CA called `name` in its own temporary folder. */
  static create(name: string): TestCa {
    const ca = new TestCa(mkdtempSync(path.join(tmpdir(), `canopy-${name}-`)), name);
    openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', ca.caKeyFile, '-out', ca.caFile, '-days', VALID_DAYS, '-subj', `/CN=${name} test CA`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return ca;
  }

  /** A leaf certificate with common name `cn`, for 127.0.0.1 and localhost, good for serverAuth and clientAuth. */
  issue(cn: string): CertFiles {
    const base = path.join(this.dir, cn);
    const ext = `${base}.ext`;
    writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n');
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${cn}`]);
    openssl([
      'x509', '-req', '-in', `${base}.csr`, '-CA', this.caFile, '-CAkey', this.caKeyFile, '-CAcreateserial',
      '-out', `${base}.crt`, '-days', VALID_DAYS, '-extfile', ext,
    ]);
    return { certFile: `${base}.crt`, keyFile: `${base}.key`, caFile: this.caFile };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
