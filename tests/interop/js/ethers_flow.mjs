// An ethers v6 wallet against an Ethereum JSON-RPC node: an EIP-1559 transfer with exact
// balance accounting, then a small contract deployed, called (transaction + eth_call) and its
// events read back with eth_getLogs.
//
// Usage:
//   node ethers_flow.mjs --rpc http://127.0.0.1:8545 --chain-id 7215 --key-file FILE
// Each flag has an environment twin: RPC_URL, CHAIN_ID, PRIVATE_KEY_FILE (or PRIVATE_KEY;
// a key on the command line would show in `ps`). Prints one JSON line on success; exits
// non-zero with a message on the first failed check. Never prints the key.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  Contract,
  ContractFactory,
  JsonRpcProvider,
  Wallet,
  getBytes,
  hexlify,
  id,
  zeroPadValue,
} from "ethers";

const { values: args } = parseArgs({
  options: {
    rpc: { type: "string", default: process.env.RPC_URL },
    "chain-id": { type: "string", default: process.env.CHAIN_ID },
    "key-file": { type: "string", default: process.env.PRIVATE_KEY_FILE },
    "timeout-ms": { type: "string", default: process.env.TIMEOUT_MS ?? "60000" },
  },
});

function fail(message) {
  console.error(`ethers_flow: ${message}`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
}

if (!args.rpc) fail("give --rpc URL (or RPC_URL)");
if (!args["chain-id"]) fail("give --chain-id N (or CHAIN_ID)");
const chainId = BigInt(args["chain-id"]);
const timeoutMs = Number(args["timeout-ms"]);
let key = process.env.PRIVATE_KEY;
if (args["key-file"]) key = readFileSync(args["key-file"], "utf8").split("\n")[0].trim();
if (!key) fail("give --key-file FILE (or PRIVATE_KEY_FILE / PRIVATE_KEY)");

// ---------------------------------------------------------------------------------------------
// The contract: a counter, assembled by hand (no compiler needed).
//   increment()  0xd09de08a  count += 1; emit Incremented(msg.sender indexed, count)
//   count()      0x06661abd  returns count (storage slot 0)
//   anything else reverts.
// ---------------------------------------------------------------------------------------------

const OP = {
  STOP: 0x00, ADD: 0x01, EQ: 0x14, SHR: 0x1c, CALLER: 0x33, CALLDATALOAD: 0x35, CODECOPY: 0x39,
  MSTORE: 0x52, SLOAD: 0x54, SSTORE: 0x55, JUMPI: 0x57, JUMPDEST: 0x5b, DUP1: 0x80, LOG2: 0xa2,
  RETURN: 0xf3, REVERT: 0xfd,
};
const INCREMENT = "0xd09de08a";
const COUNT = "0x06661abd";
const INCREMENTED_TOPIC = id("Incremented(address,uint256)");

// Items: an opcode number, ["push", hexOrNumber, width], ["ref", label] (a PUSH2 of a label's
// offset), or ["label", name] (a JUMPDEST there).
function assemble(items) {
  const size = (item) => {
    if (typeof item === "number") return 1;
    if (item[0] === "push") return 1 + item[2];
    if (item[0] === "ref") return 3;
    return 1;
  };
  const labels = {};
  let pc = 0;
  for (const item of items) {
    if (Array.isArray(item) && item[0] === "label") labels[item[1]] = pc;
    pc += size(item);
  }
  const out = [];
  for (const item of items) {
    if (typeof item === "number") {
      out.push(item);
    } else if (item[0] === "push") {
      const width = item[2];
      out.push(0x5f + width, ...getBytes(zeroPadValue(hexlify(toBytes(item[1])), width)));
    } else if (item[0] === "ref") {
      const at = labels[item[1]];
      out.push(0x61, at >> 8, at & 0xff);
    } else {
      out.push(OP.JUMPDEST);
    }
  }
  return Uint8Array.from(out);
}

function toBytes(v) {
  if (typeof v === "number") {
    const hex = v.toString(16);
    return getBytes("0x" + (hex.length % 2 ? "0" : "") + hex);
  }
  return getBytes(v);
}

const push1 = (v) => ["push", v, 1];
const runtime = assemble([
  push1(0), OP.CALLDATALOAD, push1(0xe0), OP.SHR,
  OP.DUP1, ["push", INCREMENT, 4], OP.EQ, ["ref", "increment"], OP.JUMPI,
  OP.DUP1, ["push", COUNT, 4], OP.EQ, ["ref", "count"], OP.JUMPI,
  push1(0), OP.DUP1, OP.REVERT,
  ["label", "increment"],
  push1(0), OP.SLOAD, push1(1), OP.ADD, // new = count + 1
  OP.DUP1, push1(0), OP.SSTORE, // count = new
  push1(0), OP.MSTORE, // memory[0..32] = new (the event data)
  OP.CALLER, ["push", INCREMENTED_TOPIC, 32], push1(0x20), push1(0), OP.LOG2,
  OP.STOP,
  ["label", "count"],
  push1(0), OP.SLOAD, push1(0), OP.MSTORE, push1(0x20), push1(0), OP.RETURN,
]);
// Init code: copy the runtime after this prefix into memory and return it.
const INIT_LEN = 11;
const init = assemble([
  push1(runtime.length), OP.DUP1, push1(INIT_LEN), push1(0), OP.CODECOPY, push1(0), OP.RETURN,
]);
check(init.length === INIT_LEN, `init code is ${init.length} bytes, expected ${INIT_LEN}`);
const bytecode = hexlify(Uint8Array.from([...init, ...runtime]));
const abi = [
  "function increment()",
  "function count() view returns (uint256)",
  "event Incremented(address indexed by, uint256 value)",
];

// ---------------------------------------------------------------------------------------------

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const provider = new JsonRpcProvider(args.rpc, undefined, { batchMaxCount: 1, cacheTimeout: -1 });
  // No response cache (a balance read twice must hit the node) and quick receipt polling.
  provider.pollingInterval = 200;
  const wallet = new Wallet(key, provider);
  const network = await withTimeout(provider.getNetwork(), "eth_chainId");
  check(network.chainId === chainId, `chain id is ${network.chainId}, expected ${chainId}`);

  // Fee data the wallet builds EIP-1559 transactions from.
  const feeData = await provider.getFeeData();
  check(feeData.maxFeePerGas !== null && feeData.maxPriorityFeePerGas !== null,
    "getFeeData has no EIP-1559 fields: the latest block lacks baseFeePerGas");
  const history = await provider.send("eth_feeHistory", ["0x4", "latest", [50]]);
  check(Array.isArray(history.baseFeePerGas) && history.baseFeePerGas.length >= 1,
    `eth_feeHistory has no baseFeePerGas: ${JSON.stringify(history)}`);

  // 1. A transfer to a fresh address: balances move by exactly value (+ fee for the sender).
  const recipient = Wallet.createRandom().address;
  const value = 1234567890123456789n; // 1.234567890123456789
  const senderBefore = await provider.getBalance(wallet.address, "latest");
  const recipientBefore = await provider.getBalance(recipient, "latest");
  check(recipientBefore === 0n, `fresh address ${recipient} already holds ${recipientBefore}`);
  const tx = await wallet.sendTransaction({ to: recipient, value, type: 2 });
  check(tx.type === 2, `sent a type ${tx.type} transaction, expected 2 (EIP-1559)`);
  const receipt = await withTimeout(tx.wait(1, timeoutMs), `receipt of ${tx.hash}`);
  check(receipt.status === 1, `transfer ${tx.hash} failed: status ${receipt.status}`);
  const raw = await provider.send("eth_getTransactionReceipt", [tx.hash]);
  const effectiveGasPrice = BigInt(raw.effectiveGasPrice);
  check(effectiveGasPrice === receipt.gasPrice, "ethers' gasPrice differs from effectiveGasPrice");
  check(effectiveGasPrice <= tx.maxFeePerGas, "paid more per gas than maxFeePerGas");
  const fee = receipt.gasUsed * effectiveGasPrice;
  const senderAfter = await provider.getBalance(wallet.address, "latest");
  const recipientAfter = await provider.getBalance(recipient, "latest");
  check(recipientAfter - recipientBefore === value,
    `recipient gained ${recipientAfter - recipientBefore}, expected ${value}`);
  check(senderBefore - senderAfter === value + fee,
    `sender lost ${senderBefore - senderAfter}, expected ${value} + fee ${fee}`);
  const block = await provider.getBlock(receipt.blockNumber);
  check(block.transactions.includes(tx.hash), `block ${receipt.blockNumber} does not list ${tx.hash}`);

  // 2. Deploy the counter, call it, and read its events.
  const factory = new ContractFactory(abi, bytecode, wallet);
  const deployed = await factory.deploy();
  const deployReceipt = await withTimeout(deployed.deploymentTransaction().wait(1, timeoutMs), "deployment");
  check(deployReceipt.status === 1, "deployment failed");
  const address = await deployed.getAddress();
  check(deployReceipt.contractAddress === address, "receipt contractAddress differs from the computed one");
  const code = await provider.getCode(address);
  check(code === hexlify(runtime), `code at ${address} is ${code}, expected the runtime`);
  const counter = new Contract(address, abi, wallet);
  check((await counter.count()) === 0n, "a new counter is not 0");

  const values = [];
  for (let i = 1n; i <= 2n; i++) {
    const call = await counter.increment();
    const r = await withTimeout(call.wait(1, timeoutMs), `increment ${i}`);
    check(r.status === 1, `increment ${i} failed`);
    check(r.logs.length === 1, `increment ${i} emitted ${r.logs.length} logs, expected 1`);
    const event = counter.interface.parseLog(r.logs[0]);
    check(event.name === "Incremented" && event.args.by === wallet.address && event.args.value === i,
      `increment ${i} emitted ${event.name}(${event.args.by}, ${event.args.value})`);
    check((await counter.count()) === i, `count() after increment ${i} is not ${i}`);
    values.push(i);
  }
  // A call to an unknown selector reverts.
  let reverted = false;
  try {
    await provider.call({ to: address, data: "0x12345678" });
  } catch {
    reverted = true;
  }
  check(reverted, "a call with an unknown selector did not revert");

  const logs = await provider.getLogs({
    address,
    fromBlock: deployReceipt.blockNumber,
    toBlock: "latest",
    topics: [INCREMENTED_TOPIC, zeroPadValue(wallet.address, 32)],
  });
  check(logs.length === 2, `eth_getLogs found ${logs.length} Incremented logs, expected 2`);
  const logged = logs.map((l) => BigInt(l.data));
  check(logged[0] === 1n && logged[1] === 2n, `logged values ${logged}, expected 1,2`);
  const queried = await counter.queryFilter("Incremented", deployReceipt.blockNumber);
  check(queried.length === 2, `queryFilter found ${queried.length} events, expected 2`);

  console.log(JSON.stringify({
    ok: true,
    chain_id: Number(network.chainId),
    sender: wallet.address,
    transfer: { hash: tx.hash, block: receipt.blockNumber, value: value.toString(), fee: fee.toString() },
    contract: { address, count: values.length },
  }));
}

main().catch((e) => fail(e?.stack ?? String(e)));
