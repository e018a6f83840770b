// Commander parsers of integer flags that name the flag when the value is not one.
import { InvalidArgumentError } from 'commander';

/** Parses a positive integer flag, naming the flag when it is not one. */
export function positiveInt(flag: string): (value: string) => number {
  return integerAtLeast(1, flag);
}

/** Parses a non-negative integer flag, naming the flag when it is not one. */
export function nonNegativeInt(flag: string): (value: string) => number {
  return integerAtLeast(0, flag);
}

function integerAtLeast(min: number, flag: string): (value: string) => number {
  const what = min === 0 ? 'a non-negative integer' : 'a positive integer';
  return (value) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${flag} must be ${what}, got ${JSON.stringify(value)}`);
    return n;
  };
}
