// A shard's `.ids` file: UTF-8, one id per line, each line ended by "\n",
// line n = item n of the shard. Ids are therefore non-empty and contain no
// line breaks; the builder checks that with `idProblem` before any file is written.
import { open, readFile } from 'node:fs/promises';

/** Ids written per write call: bounds the string built in memory. */
const IDS_PER_WRITE = 65_536;

/** Why `id` cannot be stored, or undefined if it can. */
export function idProblem(id: string): string | undefined {
  if (id.length === 0) return 'id is empty';
  if (/[\n\r]/.test(id)) return `id ${JSON.stringify(id)} contains a line break`;
  return undefined;
}

export async function writeIdsFile(file: string, ids: readonly string[]): Promise<void> {
  const handle = await open(file, 'wx');
  try {
    for (let i = 0; i < ids.length; i += IDS_PER_WRITE) {
      await handle.write(ids.slice(i, i + IDS_PER_WRITE).join('\n') + '\n');
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Reads a whole `.ids` file; item n's id is element n. */
export async function readIdsFile(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  if (text.length === 0) return [];
  if (!text.endsWith('\n')) throw new Error(`${file}: the last line has no "\\n"; the file is truncated`);
  return text.slice(0, -1).split('\n');
}
