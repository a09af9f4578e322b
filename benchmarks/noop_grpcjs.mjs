// The reference no-op: @grpc/grpc-js on Node (the upstream Scrawn backend's stack), the same two methods as
// benchmarks/noop_server.py, raw bytes in and out (no protobuf work on either side; StreamEvents answers the
// count, as the Python no-op does, so the load generator can tell a whole stream from a short one).
//   node benchmarks/noop_grpcjs.mjs PORT     prints "ready" once bound
import { createRequire } from "node:module";
const require = createRequire(new URL("../tests/ts/package.json", import.meta.url));
const grpc = require("@grpc/grpc-js");

const raw = (x) => x;
const method = (name, requestStream) => ({
  path: `/event.v1.EventService/${name}`, requestStream, responseStream: false,
  requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw,
});
// StreamEventResponse{eventsProcessed: n}: field 1, varint.
const eventsProcessed = (n) => {
  const bytes = [0x08];
  do { bytes.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0)); n >>>= 7; } while (n > 0);
  return Buffer.from(bytes);
};
const server = new grpc.Server({ "grpc.max_receive_message_length": 8 * 1024 * 1024 });
server.addService(
  { RegisterEvent: method("RegisterEvent", false), StreamEvents: method("StreamEvents", true) },
  {
    RegisterEvent: (_call, done) => done(null, Buffer.alloc(0)),
    StreamEvents: (call, done) => {
      let n = 0;
      call.on("data", () => { n += 1; });
      call.on("end", () => done(null, eventsProcessed(n)));
    },
  },
);
server.bindAsync(`127.0.0.1:${process.argv[2]}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  console.log("ready");
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.tryShutdown(() => process.exit(0)));
