// Decodes and verifies a SIGN_MODE_DIRECT transaction with cosmjs, and signs
// the same SignDoc with cosmjs's own wallet for comparison.
//
// Input (stdin, JSON): {"txHex", "chainId", "accountNumber", "prefix",
// "testPrivKeyHex"} where testPrivKeyHex is a throwaway test key.
// Output (stdout, JSON): the decoded fields, whether the signature verifies,
// and cosmjs's own signature over the same SignDoc.
import { readFileSync } from "node:fs";
import { pubkeyToAddress } from "@cosmjs/amino";
import { Secp256k1, Secp256k1Signature, sha256 } from "@cosmjs/crypto";
import { fromHex, toHex, toBase64 } from "@cosmjs/encoding";
import { decodePubkey, decodeTxRaw, makeSignBytes, makeSignDoc, DirectSecp256k1Wallet } from "@cosmjs/proto-signing";
import { TxRaw } from "cosmjs-types/cosmos/tx/v1beta1/tx";

const input = JSON.parse(readFileSync(0, "utf8"));
const txBytes = fromHex(input.txHex);
const raw = TxRaw.decode(txBytes);
const decoded = decodeTxRaw(txBytes);
const signer = decoded.authInfo.signerInfos[0];
const pubkey = decodePubkey(signer.publicKey);
const pubkeyBytes = Uint8Array.from(Buffer.from(pubkey.value, "base64"));
const signDoc = makeSignDoc(raw.bodyBytes, raw.authInfoBytes, input.chainId, BigInt(input.accountNumber));
const signBytes = makeSignBytes(signDoc);
const sig = Secp256k1Signature.fromFixedLength(decoded.signatures[0]);
const valid = await Secp256k1.verifySignature(sig, sha256(signBytes), pubkeyBytes);

const wallet = await DirectSecp256k1Wallet.fromKey(fromHex(input.testPrivKeyHex), input.prefix);
const [account] = await wallet.getAccounts();
const own = await wallet.signDirect(account.address, signDoc);

process.stdout.write(JSON.stringify({
  signatureValid: valid,
  pubkeyType: pubkey.type,
  address: pubkeyToAddress(pubkey, input.prefix),
  walletAddress: account.address,
  sequence: signer.sequence.toString(),
  signMode: signer.modeInfo.single.mode,
  gasLimit: decoded.authInfo.fee.gasLimit.toString(),
  fee: decoded.authInfo.fee.amount.map((c) => c.amount + c.denom),
  memo: decoded.body.memo,
  timeoutHeight: decoded.body.timeoutHeight.toString(),
  messages: decoded.body.messages.map((m) => ({ typeUrl: m.typeUrl, valueHex: toHex(m.value) })),
  cosmjsSignature: toHex(Buffer.from(own.signature.signature, "base64")),
  txSignature: toHex(decoded.signatures[0]),
}) + "\n");
