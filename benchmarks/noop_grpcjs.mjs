// The reference no-op: @grpc/grpc-js on Node (the upstream Scrawn backend's stack), the same two methods as
// benchmarks/noop_server.py, raw bytes in and out (no protobuf work on either side).
//   node benchmarks/noop_grpcjs.mjs PORT     prints "ready" once bound
import { createRequire } from "node:module";
const require = createRequire(new URL("../tests/ts/package.json", import.meta.url));
const grpc = require("@grpc/grpc-js");

const raw = (x) => x;
const method = (name, requestStream) => ({
  path: `/event.v1.EventService/${name}`, requestStream, responseStream: false,
  requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw,
});
const server = new grpc.Server({ "grpc.max_receive_message_length": 8 * 1024 * 1024 });
server.addService(
  { RegisterEvent: method("RegisterEvent", false), StreamEvents: method("StreamEvents", true) },
  {
    RegisterEvent: (_call, done) => done(null, Buffer.alloc(0)),
    StreamEvents: (call, done) => {
      call.on("data", () => {});
      call.on("end", () => done(null, Buffer.alloc(0)));
    },
  },
);
server.bindAsync(`127.0.0.1:${process.argv[2]}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  console.log("ready");
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.tryShutdown(() => process.exit(0)));
