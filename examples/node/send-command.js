#!/usr/bin/env node
// Send one flowgate command from Node (amqplib) and print its events until the terminal one.
//
//   node send-command.js [AMQP_URL] COMMAND_TYPE DATA_JSON [--timeout SECONDS]
//
// The command is a CloudEvent in structured mode (docs/contract.md): published to the topic
// exchange flowgate.commands with the command type as routing key, persistent, confirmed by
// RabbitMQ. Its AMQP reply_to names a queue of this program's own (exclusive, deleted when the
// program ends), where flowgate sends a copy of every event of the command.
//
// Exit codes, as `flowgate send --wait`: 0 succeeded, 3 failed, 4 cancelled, 5 no terminal event
// within --timeout (the command goes on), 1 RabbitMQ unreachable or the command not confirmed,
// 2 bad arguments.
"use strict";

const crypto = require("node:crypto");
const amqp = require("amqplib");

const DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/";
const EXIT = { succeeded: 0, failed: 3, cancelled: 4, timeout: 5, error: 1, usage: 2 };
const USAGE = "usage: node send-command.js [AMQP_URL] COMMAND_TYPE DATA_JSON [--timeout SECONDS]";

function parseArgs(argv) {
  const args = [...argv];
  let timeout = 600;
  const at = args.indexOf("--timeout");
  if (at !== -1) {
    timeout = Number(args[at + 1]);
    args.splice(at, 2);
    if (!(timeout > 0)) throw new Error("--timeout takes a number of seconds");
  }
  if (args.length < 2 || args.length > 3) throw new Error("wrong number of arguments");
  const [url, type, json] = args.length === 3 ? args : [DEFAULT_URL, ...args];
  let data;
  try {
    data = JSON.parse(json);
  } catch (err) {
    throw new Error(`DATA_JSON is not JSON: ${err.message}`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new Error("DATA_JSON must be a JSON object");
  }
  return { url, type, data, timeout };
}

// One line per event: its kind, the vendor's status, the vendor's reference, the error.
function describe(kind, data) {
  const parts = [kind.padEnd(10)];
  if (data.status) parts.push(data.status);
  const refs = Object.entries(data.vendor_ref || {}).map(([k, v]) => `${k}=${v}`);
  if (kind === "accepted" && refs.length) parts.push(refs.join(", "));
  if (data.error) parts.push(`${data.error.kind}: ${data.error.message}`);
  return parts.join("  ");
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`${err.message}\n${USAGE}`);
    return EXIT.usage;
  }
  const { url, type, data, timeout } = args;
  const id = crypto.randomUUID();
  const command = {
    specversion: "1.0",
    id,
    source: "urn:example:flowgate-node-example",
    type: `flowgate.${type}`,
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    data,
  };

  let connection;
  try {
    connection = await amqp.connect(url);
  } catch (err) {
    console.error(`cannot reach RabbitMQ: ${err.message}`);
    return EXIT.error;
  }
  connection.on("error", (err) => console.error(`connection: ${err.message}`));
  let timer;
  try {
    const channel = await connection.createConfirmChannel();
    channel.on("error", (err) => console.error(`channel: ${err.message}`));

    // The reply queue, consumed before publishing: a synchronous command may answer at once.
    const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
    const seen = new Set(); // an event may be delivered twice, always with the same id
    const ended = new Promise((resolve, reject) => {
      timer = setTimeout(() => resolve("timeout"), timeout * 1000);
      channel.on("close", () => reject(new Error("the channel closed")));
      const onMessage = (message) => {
        if (message === null) return reject(new Error("RabbitMQ cancelled the consumer"));
        let event;
        try {
          event = JSON.parse(message.content.toString("utf8"));
        } catch {
          return; // not an event
        }
        if (event?.subject !== id || seen.has(event.id)) return;
        seen.add(event.id);
        const kind = String(event.type).split(".").pop(); // flowgate.<command-type>.<kind>
        console.log(describe(kind, event.data || {}));
        if (kind === "succeeded" || kind === "failed" || kind === "cancelled") resolve(kind);
      };
      channel.consume(queue, onMessage, { noAck: true }).catch(reject);
    });
    ended.catch(() => {}); // awaited below; a failure before that is reported there

    console.log(`${type} ${id}`);
    await new Promise((resolve, reject) => {
      const properties = {
        contentType: "application/cloudevents+json",
        contentEncoding: "utf-8",
        messageId: id,
        replyTo: queue,
        persistent: true,
      };
      const body = Buffer.from(JSON.stringify(command));
      channel.publish("flowgate.commands", type, body, properties, (err) =>
        err ? reject(new Error(`not confirmed by RabbitMQ: ${err.message || err}`)) : resolve(),
      );
    });

    const outcome = await ended;
    if (outcome === "timeout") console.log(`no terminal event within ${timeout} s; the command goes on`);
    return EXIT[outcome];
  } catch (err) {
    console.error(`${type} ${id}: ${err.message}`);
    return EXIT.error;
  } finally {
    clearTimeout(timer);
    await connection.close().catch(() => {});
  }
}

main().then((code) => {
  process.exitCode = code;
});
