// An existing Annoy `.ann` file, so a forest built elsewhere can be re-sharded.
// Annoy's file has no header: the node layout follows from --dim and --metric
// (see docs/annoy-format.md). Items are nodes 0..n_items-1
// and n_items is the descendant count of the trailing root copies. An item node
// has n_descendants == 1; an id never added is an all-zero hole and is skipped.
// The item number is the id.
import type { Metric } from '../../format/metric';
import { InputError } from '../input-error';
import { ByteReader, float32FromLE } from './byte-reader';
import { ROWS_PER_BATCH, type ReaderOptions, type Row, type VectorReader } from './vector-reader';

interface NodeLayout {
  readonly nodeBytes: number;
  /** Byte offset of the vector in a node. */
  readonly vectorOffset: number;
  readonly decode: (vectorBytes: Buffer, dim: number) => Float32Array;
}

function layoutOf(metric: Metric, dim: number): NodeLayout {
  const floats = (offset: number): NodeLayout => ({ nodeBytes: offset + 4 * dim, vectorOffset: offset, decode: float32FromLE });
  switch (metric) {
    case 'angular':
      return floats(12);
    case 'euclidean':
    case 'manhattan':
      return floats(16);
    case 'dot':
      // The released annoy 1.17.3 (pip) lays dot nodes out as n_descendants,
      // children[2], dot_factor, v: 16 bytes before v, not the 24 of later sources.
      return floats(16);
    case 'hamming':
      return { nodeBytes: 16 + 8 * Math.ceil(dim / 64), vectorOffset: 16, decode: unpackBits };
  }
}

/** Hamming packs input dimension 64w+j into bit j of the w-th little-endian uint64. */
function unpackBits(words: Buffer, dim: number): Float32Array {
  const out = new Float32Array(dim);
  for (let d = 0; d < dim; d++) out[d] = (words[d >> 3]! >> (d & 7)) & 1;
  return out;
}

export async function openAnn(file: string, { dim, metric }: ReaderOptions): Promise<VectorReader> {
  if (dim === undefined) throw new InputError({ file }, 'an Annoy .ann file has no header: give --dim (and --metric)');
  const layout = layoutOf(metric, dim);
  const bytes = await ByteReader.open(file);
  try {
    const itemCount = await readItemCount(bytes, file, layout, { dim, metric });
    return {
      file,
      dim,
      rowCount: itemCount,
      totalBytes: itemCount * layout.nodeBytes,
      get bytesRead() {
        return bytes.position;
      },
      async *batches() {
        for (let first = 0; first < itemCount; first += ROWS_PER_BATCH) {
          const count = Math.min(ROWS_PER_BATCH, itemCount - first);
          const nodes = await bytes.read(count * layout.nodeBytes);
          yield decodeItems(nodes, first, count, layout, { file, dim });
        }
      },
      close: () => bytes.close(),
    };
  } catch (err) {
    await bytes.close();
    throw err;
  }
}

async function readItemCount(bytes: ByteReader, file: string, layout: NodeLayout, { dim, metric }: { dim: number; metric: Metric }): Promise<number> {
  const { size } = bytes;
  const what = `${metric} nodes of dim ${dim} (${layout.nodeBytes} bytes each)`;
  if (size === 0 || size % layout.nodeBytes !== 0) {
    throw new InputError({ file }, `size ${size} bytes is not a whole number of ${what}: wrong --dim or --metric?`);
  }
  // The last node is a root copy, and a root's n_descendants is n_items.
  const itemCount = (await bytes.readAt(size - layout.nodeBytes, 4)).readInt32LE(0);
  if (itemCount < 0 || itemCount * layout.nodeBytes > size) {
    throw new InputError({ file }, `the last node says ${itemCount} items, which do not fit in ${size} bytes of ${what}: wrong --dim or --metric?`);
  }
  return itemCount;
}

function decodeItems(nodes: Buffer, first: number, count: number, layout: NodeLayout, { file, dim }: { file: string; dim: number }): Row[] {
  const rows: Row[] = [];
  for (let i = 0; i < count; i++) {
    const node = nodes.subarray(i * layout.nodeBytes, (i + 1) * layout.nodeBytes);
    const descendants = node.readInt32LE(0);
    if (descendants === 0) continue;
    const item = first + i;
    if (descendants !== 1) {
      throw new InputError({ file, row: item }, `node ${item} has ${descendants} descendants; an item node has 1: wrong --dim or --metric, or not an Annoy file?`);
    }
    rows.push({ row: item, id: String(item), vector: layout.decode(node.subarray(layout.vectorOffset), dim) });
  }
  return rows;
}
