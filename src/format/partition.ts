// Which shard holds an id. Every process that routes by id (the builder, the
// router's SearchByItem and GetItem) must agree, so this is the only place the
// rule lives, and it never changes for a given manifest `partitioner` value.

/** The partitioner named in manifests written by this code. */
export const PARTITIONER = 'fnv1a32-fmix';

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over the UTF-8 bytes of `id`, then murmur3's finaliser so the low bits are well mixed. */
export function hashId(id: string): number {
  let h = FNV_OFFSET_BASIS;
  for (const byte of Buffer.from(id, 'utf8')) {
    h = Math.imul(h ^ byte, FNV_PRIME);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The shard (0-based) that holds `id` in an index of `shardCount` shards. */
export function shardOfId(id: string, shardCount: number): number {
  if (!Number.isInteger(shardCount) || shardCount < 1) {
    throw new RangeError(`shard count must be a positive integer, got ${shardCount}`);
  }
  return hashId(id) % shardCount;
}
