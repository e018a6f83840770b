// One error type for everything wrong with a build's input, so the CLI can
// print a single line that says which file, which row and what is wrong.

export interface InputErrorContext {
  readonly file: string;
  /** 0-based row of the input (the default id of that row), when the problem is in one row. */
  readonly row?: number;
  /** 1-based line, for text formats, when it differs from `row + 1` or helps to find the row. */
  readonly line?: number;
}

/** Bad build input: the message reads `<file>: row <n> (line <l>): <problem>`. */
export class InputError extends Error {
  override readonly name = 'InputError';
  readonly file: string;
  readonly row: number | undefined;
  readonly line: number | undefined;
  readonly problem: string;

  constructor(context: InputErrorContext, problem: string, options?: { cause?: unknown }) {
    super(`${where(context)}: ${problem}`, options);
    this.file = context.file;
    this.row = context.row;
    this.line = context.line;
    this.problem = problem;
  }
}

function where({ file, row, line }: InputErrorContext): string {
  let text = file;
  if (row !== undefined) text += `: row ${row}`;
  if (line !== undefined) text += row === undefined ? `: line ${line}` : ` (line ${line})`;
  return text;
}
