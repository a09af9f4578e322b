#!/usr/bin/env node
// Drives a running Scrawn server with the TypeScript-ecosystem clients the Scrawn TS SDK is built on:
//   * @grpc/grpc-js + @grpc/proto-loader (what the current SDK ships: binary gRPC over h2c),
//   * @connectrpc/connect-node: gRPC over HTTP/2, Connect over HTTP/1.1 (binary and JSON; what older SDK
//     builds used) and gRPC-web over HTTP/1.1.
// Every protocol sends the same calls: RegisterEvent (amount, no tag), StreamEvents (client streaming: a basic
// item, an AI item priced by expressions, an item with an empty userId), and RegisterEvent + StreamEvents with
// a well-formed but unknown API key (and RegisterEvent with a key of the wrong prefix).
//
// Environment:
//   SCRAWN_URL         base URL, e.g. http://127.0.0.1:8069          (connect-node transports)
//   SCRAWN_TARGET      host:port, e.g. 127.0.0.1:8069                (grpc-js)
//   SCRAWN_KEY         a live API key
//   SCRAWN_PROTO_DIR   the repository's proto/ directory (default: ../../proto next to this file)
//   SCRAWN_DESCRIPTOR  a binary FileDescriptorSet of event/v1/event.proto (protoc --descriptor_set_out
//                      --include_imports); when unset it is made with `$SCRAWN_PYTHON -m grpc_tools.protoc`
//   SCRAWN_PYTHON      python with grpcio-tools, only used when SCRAWN_DESCRIPTOR is unset (default python3)
//
// Prints one JSON object on stdout; exits 1 if any call failed unexpectedly (or a bad-key call succeeded).

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createFileRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
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
const PROTO_DIR = resolve(process.env.SCRAWN_PROTO_DIR || join(here, "..", "..", "proto"));
const EVENT_PROTO = "event/v1/event.proto";
// Right shape (scrn_live_ + 32 alphanumerics), never issued: the server must answer "API key not found".
const BAD_KEY = "scrn_live_" + "0123456789abcdefghijABCDEFGHIJxy";
// Wrong prefix: its error message has a non-ASCII em dash, which must survive grpc-message percent-encoding.
const BAD_PREFIX_KEY = "sk_live_" + "0123456789abcdefghijABCDEFGHIJxy";
const DEADLINE_MS = 30_000;

// gRPC status code numbers (Connect's Code enum uses the same numbers) → canonical names.
const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
  "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

function mustEnv(name) {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`client.mjs: environment variable ${name} is required\n`);
    process.exit(2);
  }
  return value;
}

// ---- the calls every protocol makes (plain objects; each client maps them onto its own message API) ----

function registerRequest(user) {
  return { type: "BASIC_USAGE", userId: user, basicUsage: { basicUsageType: "RAW", amount: 5 } };
}

function streamItems(protocol, user) {
  return [
    {
      type: "BASIC_USAGE",
      userId: user,
      idempotencyKey: `ts-${protocol}-basic`,
      basicUsage: { basicUsageType: "MIDDLEWARE_CALL", amount: 2 },
    },
    {
      type: "AI_TOKEN_USAGE",
      userId: user,
      idempotencyKey: `ts-${protocol}-ai`,
      aiTokenUsage: {
        model: "gpt-4o-mini",
        provider: "openai",
        inputTokens: 1234,
        outputTokens: 567,
        inputExpr: "mul(inputTokens(), 0.001)", // 1.234 cents
        outputExpr: "mul(outputTokens(), 0.002)", // 1.134 cents
      },
    },
    {
      type: "BASIC_USAGE",
      userId: "", // invalid: must be a non-empty string
      idempotencyKey: `ts-${protocol}-invalid`,
      basicUsage: { basicUsageType: "RAW", amount: 7 },
    },
  ];
}

// ---- @grpc/grpc-js + @grpc/proto-loader ----

async function runGrpcJs(protocol) {
  const definition = protoLoader.loadSync(EVENT_PROTO, {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition);
  const client = new pkg.event.v1.EventService(TARGET, grpc.credentials.createInsecure());
  const meta = (key) => {
    const m = new grpc.Metadata();
    m.set("authorization", `Bearer ${key}`);
    return m;
  };
  const deadline = () => ({ deadline: new Date(Date.now() + DEADLINE_MS) });
  const wrapError = (err) =>
    Object.assign(new Error(err.details || err.message), { grpcCode: CODE_NAMES[err.code] ?? String(err.code) });
  const unary = (request, key) =>
    new Promise((ok, fail) =>
      client.RegisterEvent(request, meta(key), deadline(), (err, res) => (err ? fail(wrapError(err)) : ok(res))),
    );
  const stream = (items, key) =>
    new Promise((ok, fail) => {
      const call = client.StreamEvents(meta(key), deadline(), (err, res) => (err ? fail(wrapError(err)) : ok(res)));
      for (const item of items) call.write(item);
      call.end();
    });
  try {
    return await exercise(protocol, {
      register: async (req, key) => plainRegister(await unary(req, key)),
      stream: async (items, key) => plainStream(await stream(items, key)),
    });
  } finally {
    client.close();
  }
}

function plainRegister(res) {
  return {
    eventId: res.eventId,
    idempotencyKey: res.idempotencyKey,
    ingestedTimestamp: String(res.ingestedTimestamp),
    eventType: res.eventType,
    userId: res.userId,
    message: res.message,
    duplicate: Boolean(res.duplicate),
  };
}

function plainStream(res) {
  return {
    eventsProcessed: res.eventsProcessed,
    eventsFailed: res.eventsFailed,
    duplicates: res.duplicates ?? 0,
    message: res.message,
    failures: (res.failures ?? []).map((f) => ({
      eventIndex: f.eventIndex ?? 0,
      idempotencyKey: f.idempotencyKey ?? "",
      errorCode: f.errorCode ?? "",
      message: f.message ?? "",
    })),
  };
}

// ---- @connectrpc/connect-node with message schemas from a FileDescriptorSet (no generated code) ----

function loadRegistry() {
  let path = process.env.SCRAWN_DESCRIPTOR;
  if (!path) {
    path = join(mkdtempSync(join(tmpdir(), "scrawn-ts-")), "event.binpb");
    execFileSync(process.env.SCRAWN_PYTHON || "python3", [
      "-m", "grpc_tools.protoc", `-I${PROTO_DIR}`, `--descriptor_set_out=${path}`, "--include_imports",
      join(PROTO_DIR, EVENT_PROTO),
    ], { stdio: ["ignore", "ignore", "inherit"] });
  }
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(path)));
}

// protobuf-es v2 spells oneofs as {case, value} and enums as numbers: map the plain objects above onto it.
function esBasicUsage(schemaOf, b) {
  return {
    basicUsageType: schemaOf("event.v1.BasicUsageType").values.find((v) => v.name === b.basicUsageType).number,
    debit: { case: "amount", value: b.amount },
  };
}

function esAiTokenUsage(a) {
  return {
    model: a.model,
    provider: a.provider,
    inputTokens: a.inputTokens,
    outputTokens: a.outputTokens,
    inputDebit: { case: "inputExpr", value: a.inputExpr },
    outputDebit: { case: "outputExpr", value: a.outputExpr },
  };
}

function esRequest(schemaOf, r) {
  const type = schemaOf("event.v1.EventType").values.find((v) => v.name === r.type).number;
  const data = r.basicUsage
    ? { case: "basicUsage", value: esBasicUsage(schemaOf, r.basicUsage) }
    : { case: "aiTokenUsage", value: esAiTokenUsage(r.aiTokenUsage) };
  return { type, userId: r.userId, idempotencyKey: r.idempotencyKey ?? "", data };
}

async function runConnect(protocol, transport, registry) {
  const service = registry.getService("event.v1.EventService");
  if (!service) throw new Error("event.v1.EventService is not in the descriptor set");
  const schemaOf = (name) => registry.getEnum(name);
  const registerResponse = registry.getMessage("event.v1.RegisterEventResponse");
  const streamResponse = registry.getMessage("event.v1.StreamEventResponse");
  const client = createClient(service, transport);
  const headers = (key) => ({ authorization: `Bearer ${key}`, "x-client": protocol });
  const wrapError = (err) => {
    if (!(err instanceof ConnectError)) throw err;
    return Object.assign(new Error(err.rawMessage), { grpcCode: CODE_NAMES[err.code] ?? String(err.code) });
  };
  const asJson = (schema, msg) => toJson(schema, msg, { alwaysEmitImplicit: true });
  return exercise(protocol, {
    register: async (req, key) => {
      try {
        const res = await client.registerEvent(esRequest(schemaOf, req), {
          headers: headers(key), timeoutMs: DEADLINE_MS,
        });
        return plainRegister(asJson(registerResponse, res));
      } catch (err) {
        throw wrapError(err);
      }
    },
    stream: async (items, key) => {
      async function* requests() {
        for (const item of items) yield esRequest(schemaOf, item);
      }
      try {
        const res = await client.streamEvents(requests(), { headers: headers(key), timeoutMs: DEADLINE_MS });
        return plainStream(asJson(streamResponse, res));
      } catch (err) {
        throw wrapError(err);
      }
    },
  });
}

// ---- the scenario, identical for every protocol ----

async function exercise(protocol, api) {
  const user = `ts-${protocol}-user`;
  const out = { user, errors: [] };
  const attempt = async (name, fn) => {
    try {
      out[name] = await fn();
    } catch (err) {
      out.errors.push(`${name}: ${err.grpcCode ?? "ERROR"}: ${err.message}`);
    }
  };
  const expectError = async (name, fn) => {
    try {
      const res = await fn();
      out.errors.push(`${name}: expected UNAUTHENTICATED, got a response ${JSON.stringify(res)}`);
    } catch (err) {
      if (!err.grpcCode) out.errors.push(`${name}: ${err.stack ?? err}`);
      out[name] = { code: err.grpcCode ?? "ERROR", message: err.message };
    }
  };
  await attempt("register", () => api.register(registerRequest(user), KEY));
  await attempt("stream", () => api.stream(streamItems(protocol, user), KEY));
  await expectError("badKeyRegister", () => api.register(registerRequest(user), BAD_KEY));
  await expectError("badKeyStream", () => api.stream(streamItems(protocol, `${user}-bad`), BAD_KEY));
  await expectError("badPrefixRegister", () => api.register(registerRequest(`${user}-bad`), BAD_PREFIX_KEY));
  return out;
}

async function main() {
  const registry = loadRegistry();
  const protocols = {};
  const runners = {
    "grpc-js": () => runGrpcJs("grpc-js"),
    "connect-grpc": () =>
      runConnect("connect-grpc", createGrpcTransport({ baseUrl: BASE_URL, httpVersion: "2" }), registry),
    "connect-binary": () =>
      runConnect("connect-binary",
        createConnectTransport({ baseUrl: BASE_URL, httpVersion: "1.1", useBinaryFormat: true }), registry),
    "connect-json": () =>
      runConnect("connect-json",
        createConnectTransport({ baseUrl: BASE_URL, httpVersion: "1.1", useBinaryFormat: false }), registry),
    "connect-grpcweb": () =>
      runConnect("connect-grpcweb",
        createGrpcWebTransport({ baseUrl: BASE_URL, httpVersion: "1.1", useBinaryFormat: true }), registry),
  };
  let failed = false;
  for (const [name, run] of Object.entries(runners)) {
    try {
      protocols[name] = await run();
    } catch (err) {
      protocols[name] = { errors: [`${err.stack ?? err}`] };
    }
    failed ||= protocols[name].errors.length > 0;
  }
  process.stdout.write(JSON.stringify({ ok: !failed, protocols }) + "\n");
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
