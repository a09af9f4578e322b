#!/usr/bin/env node
// Calls payment.v1.PaymentService/CreateCheckoutLink (the Scrawn TS SDK's collectPayment(userId)) on a running
// Scrawn server with the TypeScript-ecosystem clients the SDK is built on: @grpc/grpc-js + @grpc/proto-loader
// (gRPC over h2c) and @connectrpc/connect-node's gRPC, Connect (HTTP/1.1) and gRPC-web transports.
// Each transport makes three calls: one for SCRAWN_USER (who owes money), one with userId "" (must be
// INVALID_ARGUMENT) and one for SCRAWN_USER + "-nothing" (owes nothing: must be FAILED_PRECONDITION).
//
// Environment (as tests/ts/client.mjs):
//   SCRAWN_URL         base URL, e.g. http://127.0.0.1:8069          (connect-node transports)
//   SCRAWN_TARGET      host:port, e.g. 127.0.0.1:8069                (grpc-js)
//   SCRAWN_KEY         a live API key
//   SCRAWN_USER        a user with an outstanding balance
//   SCRAWN_PROTO_DIR   the repository's proto/ directory (default: ../../proto next to this file)
//   SCRAWN_PYTHON      python with grpcio-tools, makes the descriptor set for connect-node (default python3)
//
// Prints one JSON object on stdout; exits 1 on any unexpected result.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";

const here = dirname(fileURLToPath(import.meta.url));
const BASE_URL = mustEnv("SCRAWN_URL");
const TARGET = mustEnv("SCRAWN_TARGET");
const KEY = mustEnv("SCRAWN_KEY");
const USER = mustEnv("SCRAWN_USER");
const PROTO_DIR = resolve(process.env.SCRAWN_PROTO_DIR || join(here, "..", "..", "proto"));
const PAYMENT_PROTO = "payment/v1/payment.proto";
const DEADLINE_MS = 30_000;

const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
  "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

function mustEnv(name) {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`checkout.mjs: environment variable ${name} is required\n`);
    process.exit(2);
  }
  return value;
}

function rpcError(message, code) {
  return Object.assign(new Error(message), { grpcCode: CODE_NAMES[code] ?? String(code) });
}

// ---- @grpc/grpc-js + @grpc/proto-loader: returns (userId) => Promise<checkoutLink> and a close function ----

function grpcJsCaller() {
  const definition = protoLoader.loadSync(PAYMENT_PROTO, {
    includeDirs: [PROTO_DIR], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition);
  const client = new pkg.payment.v1.PaymentService(TARGET, grpc.credentials.createInsecure());
  const call = (userId) =>
    new Promise((ok, fail) => {
      const meta = new grpc.Metadata();
      meta.set("authorization", `Bearer ${KEY}`);
      client.CreateCheckoutLink({ userId }, meta, { deadline: new Date(Date.now() + DEADLINE_MS) }, (err, res) =>
        err ? fail(rpcError(err.details || err.message, err.code)) : ok(res.checkoutLink),
      );
    });
  return { call, close: () => client.close() };
}

// ---- @connectrpc/connect-node with the service from a FileDescriptorSet (no generated code) ----

function loadRegistry() {
  const path = join(mkdtempSync(join(tmpdir(), "scrawn-ts-")), "payment.binpb");
  execFileSync(process.env.SCRAWN_PYTHON || "python3", [
    "-m", "grpc_tools.protoc", `-I${PROTO_DIR}`, `--descriptor_set_out=${path}`, "--include_imports",
    join(PROTO_DIR, PAYMENT_PROTO),
  ], { stdio: ["ignore", "ignore", "inherit"] });
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(path)));
}

function connectCaller(service, transport, name) {
  const client = createClient(service, transport);
  const call = async (userId) => {
    try {
      const res = await client.createCheckoutLink({ userId }, {
        headers: { authorization: `Bearer ${KEY}`, "x-client": name }, timeoutMs: DEADLINE_MS,
      });
      return res.checkoutLink;
    } catch (err) {
      if (!(err instanceof ConnectError)) throw err;
      throw rpcError(err.rawMessage, err.code);
    }
  };
  return { call, close: () => {} };
}

// ---- the scenario, identical for every transport ----

async function exercise({ call }) {
  const out = { errors: [] };
  try {
    out.checkoutLink = await call(USER);
  } catch (err) {
    out.errors.push(`checkout: ${err.grpcCode ?? "ERROR"}: ${err.message}`);
  }
  const expectError = async (name, userId, code, text) => {
    try {
      const link = await call(userId);
      out.errors.push(`${name}: expected ${code}, got ${JSON.stringify(link)}`);
    } catch (err) {
      out[name] = { code: err.grpcCode ?? "ERROR", message: err.message };
      if (err.grpcCode !== code || !err.message.includes(text)) {
        out.errors.push(`${name}: expected ${code} naming ${JSON.stringify(text)}, got ${err.stack ?? err}`);
      }
    }
  };
  await expectError("emptyUser", "", "INVALID_ARGUMENT", "userId");
  await expectError("nothingToPay", `${USER}-nothing`, "FAILED_PRECONDITION", "nothing to pay");
  return out;
}

async function main() {
  const service = loadRegistry().getService("payment.v1.PaymentService");
  if (!service) throw new Error("payment.v1.PaymentService is not in the descriptor set");
  const callers = {
    "grpc-js": () => grpcJsCaller(),
    "connect-grpc": () =>
      connectCaller(service, createGrpcTransport({ baseUrl: BASE_URL, httpVersion: "2" }), "connect-grpc"),
    "connect": () =>
      connectCaller(service, createConnectTransport({ baseUrl: BASE_URL, httpVersion: "1.1" }), "connect"),
    "connect-grpcweb": () =>
      connectCaller(service, createGrpcWebTransport({ baseUrl: BASE_URL, httpVersion: "1.1" }), "connect-grpcweb"),
  };
  const transports = {};
  let failed = false;
  for (const [name, make] of Object.entries(callers)) {
    let caller;
    try {
      caller = make();
      transports[name] = await exercise(caller);
    } catch (err) {
      transports[name] = { errors: [`${err.stack ?? err}`] };
    } finally {
      caller?.close();
    }
    failed ||= transports[name].errors.length > 0;
  }
  process.stdout.write(JSON.stringify({ ok: !failed, transports }) + "\n");
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
