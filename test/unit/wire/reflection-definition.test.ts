// Reflection must describe map fields the way protoc does, or protobuf-go
// clients (ghz, grpcurl) refuse the whole file. load-tests/ drive ghz through it.
import { FileDescriptorProto, type IDescriptorProto, type IFileDescriptorProto } from 'protobufjs/ext/descriptor';
import { describe, expect, it } from 'vitest';

import { canopyPackageDefinition } from '../../../src/wire/contract';
import { reflectionPackageDefinition } from '../../../src/wire/reflection-definition';

function files(definition: ReturnType<typeof canopyPackageDefinition>): IFileDescriptorProto[] {
  const bytes = (definition['canopy.v1.BatchSearchEnvelope'] as { fileDescriptorProtos: Buffer[] }).fileDescriptorProtos;
  return bytes.map((b) => FileDescriptorProto.decode(b) as unknown as IFileDescriptorProto);
}

function envelope(file: IFileDescriptorProto): IDescriptorProto {
  return file.messageType!.find((m) => m.name === 'BatchSearchEnvelope')!;
}

describe('reflectionPackageDefinition', () => {
  it('names map entries <Field>Entry and points the map field at it, as protoc does', () => {
    const before = envelope(files(canopyPackageDefinition())[0]!);
    expect(before.nestedType!.map((n) => n.name)).toEqual(['TraceContext']); // protobufjs's naming, which protobuf-go rejects

    const after = envelope(files(reflectionPackageDefinition(canopyPackageDefinition()))[0]!);
    expect(after.nestedType!.map((n) => [n.name, n.options?.mapEntry])).toEqual([['TraceContextEntry', true]]);
    const field = after.field!.find((f) => f.name === 'traceContext')!;
    expect(field.typeName).toBe('TraceContextEntry');
  });

  it('leaves everything else as it was', () => {
    const before = files(canopyPackageDefinition())[0]!;
    const after = files(reflectionPackageDefinition(canopyPackageDefinition()))[0]!;
    expect(after.messageType!.map((m) => m.name)).toEqual(before.messageType!.map((m) => m.name));
    expect(after.service).toEqual(before.service);
    const search = (f: IFileDescriptorProto) => f.messageType!.find((m) => m.name === 'SearchRequest');
    expect(search(after)).toEqual(search(before));
  });
});
