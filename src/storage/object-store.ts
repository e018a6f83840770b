// Object storage through the AWS SDK (S3 and S3-compatible servers: MinIO,
// Ceph, moto). Credentials and region come the AWS way: the SDK's default
// chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and
// ~/.aws/{config,credentials}, web identity on Kubernetes, instance roles);
// only the endpoint of a non-AWS server is ours to pass (`--s3-endpoint`).
// Files stream both ways: uploads go in multipart parts, downloads are hashed
// as they are written, so neither is held in memory whole.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { GetObjectCommand, HeadObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

import { ObjectIntegrityError } from './object-integrity-error';
import { parseObjectUrl } from './object-url';

/** Used only when a custom endpoint is set and neither the environment nor a profile names a region. */
const DEFAULT_ENDPOINT_REGION = 'us-east-1';
/** Multipart part size: S3's minimum is 5 MiB; larger parts mean fewer requests for multi-GB forests. */
const UPLOAD_PART_BYTES = 16 * 1024 * 1024;
/** Parts uploaded at once per file. */
const UPLOAD_PARTS_IN_FLIGHT = 4;

export interface ObjectStoreOptions {
  /** An S3-compatible server's URL (`--s3-endpoint`); default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS itself. Implies path-style bucket addressing. */
  readonly endpoint?: string;
}

/** What a downloaded object must be; anything else is refused. */
export interface ExpectedObject {
  readonly bytes: number;
  readonly sha256: string;
}

export class ObjectStore {
  private constructor(private readonly client: S3Client) {}

  static create(options: ObjectStoreOptions = {}): ObjectStore {
    // The pinned SDK runs on Node 20; its notice is about releases after it, and would land in every command's stderr.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const config: S3ClientConfig = {
      // Only what the operation needs: some S3-compatible servers reject the newer default checksums.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
    // AWS_ENDPOINT_URL(_S3) is the SDK's own variable; path-style addressing follows any custom endpoint.
    const endpoint = options.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    if (endpoint !== undefined) {
      config.endpoint = endpoint;
      config.forcePathStyle = true;
      if (process.env.AWS_REGION === undefined && process.env.AWS_DEFAULT_REGION === undefined && process.env.AWS_PROFILE === undefined) {
        config.region = DEFAULT_ENDPOINT_REGION;
      }
    }
    return new ObjectStore(new S3Client(config));
  }

  /** Uploads a local file to `url`, in multipart parts for large files. */
  async uploadFile(file: string, url: string, signal?: AbortSignal): Promise<void> {
    const { bucket, key } = parseObjectUrl(url);
    const upload = new Upload({
      client: this.client,
      params: { Bucket: bucket, Key: key, Body: createReadStream(file) },
      partSize: UPLOAD_PART_BYTES,
      queueSize: UPLOAD_PARTS_IN_FLIGHT,
      // A failed multipart upload leaves no parts behind to pay for.
      leavePartsOnError: false,
    });
    const abort = (): void => void upload.abort();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      await upload.done();
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }

  /** The object's text, refused above `maxBytes`. */
  async readText(url: string, maxBytes: number): Promise<string> {
    const body = await this.openRead(url);
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > maxBytes) {
        body.destroy();
        throw new ObjectIntegrityError(`${url} is larger than ${maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** The object's size, or undefined when there is no such object. */
  async sizeOf(url: string): Promise<number | undefined> {
    const { bucket, key } = parseObjectUrl(url);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return head.ContentLength;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Streams `url` into `file` (created, never overwritten), hashing as it
   * goes. A size or sha256 other than `expected` removes the file and throws
   * ObjectIntegrityError; so does any failure midway, leaving no partial file.
   */
  async downloadFile(url: string, file: string, expected: ExpectedObject, signal?: AbortSignal): Promise<void> {
    const hash = createHash('sha256');
    let bytes = 0;
    const check = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        bytes += chunk.length;
        if (bytes > expected.bytes) return done(new ObjectIntegrityError(`${url} is larger than the ${expected.bytes} bytes the manifest says`));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    try {
      const body = await this.openRead(url, signal);
      await pipeline(body, check, createWriteStream(file, { flags: 'wx' }), signal === undefined ? {} : { signal });
      if (bytes !== expected.bytes) throw new ObjectIntegrityError(`${url} is ${bytes} bytes, the manifest says ${expected.bytes}`);
      const sha256 = hash.digest('hex');
      if (sha256 !== expected.sha256) throw new ObjectIntegrityError(`${url}: sha256 is ${sha256}, the manifest says ${expected.sha256}`);
    } catch (err) {
      await rm(file, { force: true });
      throw err;
    }
  }

  close(): void {
    this.client.destroy();
  }

  /** The object's bytes as a stream; ObjectIntegrityError when there is no such object. */
  async openRead(url: string, signal?: AbortSignal): Promise<Readable> {
    const { bucket, key } = parseObjectUrl(url);
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), signal === undefined ? {} : { abortSignal: signal });
      return response.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new ObjectIntegrityError(`${url} does not exist`, { cause: err });
      throw err;
    }
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}
