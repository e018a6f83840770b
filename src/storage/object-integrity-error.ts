// The error of object storage that callers tell apart, in a file of its own so
// they can test for it without loading the AWS SDK.

/** An object that is missing, or whose bytes are not what the manifest says. */
export class ObjectIntegrityError extends Error {
  override readonly name = 'ObjectIntegrityError';
}
