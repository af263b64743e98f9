// ethers v6 against chainwatch: contract.on("Transfer", ...) over a WebSocketProvider, exactly as
// a dApp would against a node. Prints "ready" once the subscription is in place, then one JSON
// line per Transfer, and exits after COUNT of them.
//
// usage: node ethers_transfers.mjs URL TOKEN_ADDRESS COUNT CHAIN_ID
import { Contract, WebSocketProvider } from "ethers";

const [url, address, count, chainId] = process.argv.slice(2);
// The network is given, as a dApp that knows its chain does (staticNetwork): otherwise ethers
// detects it in the background, and a log that comes before that ends the process with
// "network is not available yet" (requests do not wait for the detection, notifications need it).
const provider = new WebSocketProvider(url, Number(chainId), { staticNetwork: true });
const abi = ["event Transfer(address indexed from, address indexed to, uint256 value)"];
const token = new Contract(address, abi, provider);
let seen = 0;
const timer = setTimeout(() => {
  console.error(`timed out after ${seen} transfers`);
  process.exit(2);
}, 30000);

await token.on("Transfer", async (from, to, value, payload) => {
  const log = payload.log;
  console.log(JSON.stringify({
    from, to, value: value.toString(), blockNumber: log.blockNumber, index: log.index,
    removed: log.removed, transactionHash: log.transactionHash,
  }));
  seen += 1;
  if (seen === Number(count)) {
    // Exit without provider.destroy(): it rejects what ethers still has in flight (a network
    // check, a poll) with "network is not available yet", and an unhandled rejection exits 1.
    // Writes to a pipe are synchronous on Linux: every line above is out.
    process.exit(0);
  }
});
// Requests are answered in order on the socket: once this one is, eth_subscribe was handled.
const reported = await provider.send("eth_chainId", []);
console.log(JSON.stringify({ ready: true, chainId: reported }));
