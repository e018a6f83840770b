// What server reflection serves. protobufjs (under proto-loader) names the
// entry message of a map field after the field (`TraceContext`), where protoc
// names it `<Field>Entry`; protobuf-go clients (ghz, grpcurl) refuse such a
// file descriptor outright, so no method could be called through reflection.
// This serves a copy of the descriptors whose map entries carry protoc's names.
import type * as protoLoader from '@grpc/proto-loader';
import { FileDescriptorProto, type IDescriptorProto, type IFileDescriptorProto } from 'protobufjs/ext/descriptor';

const MAP_ENTRY_SUFFIX = 'Entry';

/** `definition` with every file descriptor's map entries renamed `<Name>Entry` (and the fields that use them). */
export function reflectionPackageDefinition(definition: protoLoader.PackageDefinition): protoLoader.PackageDefinition {
  const fixed = new Map<Buffer, Buffer>();
  const fix = (bytes: Buffer): Buffer => {
    let out = fixed.get(bytes);
    if (out === undefined) {
      const file = FileDescriptorProto.decode(bytes) as unknown as IFileDescriptorProto;
      for (const message of file.messageType ?? []) renameMapEntries(message);
      out = Buffer.from(FileDescriptorProto.encode(file as never).finish());
      fixed.set(bytes, out);
    }
    return out;
  };
  const copy: protoLoader.PackageDefinition = {};
  for (const [name, entry] of Object.entries(definition)) {
    const files = (entry as { fileDescriptorProtos?: unknown }).fileDescriptorProtos;
    copy[name] = Array.isArray(files) ? ({ ...entry, fileDescriptorProtos: (files as Buffer[]).map(fix) } as typeof entry) : entry;
  }
  return copy;
}

function renameMapEntries(message: IDescriptorProto): void {
  for (const nested of message.nestedType ?? []) {
    renameMapEntries(nested);
    const name = nested.name ?? '';
    if (nested.options?.mapEntry !== true || name.endsWith(MAP_ENTRY_SUFFIX)) continue;
    nested.name = `${name}${MAP_ENTRY_SUFFIX}`;
    for (const field of message.field ?? []) {
      // A field names its entry relatively (`TraceContext`) or fully (`.canopy.v1.Msg.TraceContext`).
      if (field.typeName === name || field.typeName?.endsWith(`.${message.name}.${name}`)) field.typeName = `${field.typeName}${MAP_ENTRY_SUFFIX}`;
    }
  }
}
