// Writes golden.json: a bank MsgSend transaction built and signed by cosmjs
// alone (SIGN_MODE_DIRECT) for a fixed throwaway key, so that plain `go
// test` checks chain-client/tx against bytes cosmjs made, without node.
//
// Regenerate: npm ci && node golden.mjs > ../golden.json
import { fromHex, toHex } from "@cosmjs/encoding";
import { sha256 } from "@cosmjs/crypto";
import { encodeSecp256k1Pubkey } from "@cosmjs/amino";
import { encodePubkey, makeAuthInfoBytes, makeSignBytes, makeSignDoc, DirectSecp256k1Wallet } from "@cosmjs/proto-signing";
import { MsgSend } from "cosmjs-types/cosmos/bank/v1beta1/tx";
import { TxBody, TxRaw } from "cosmjs-types/cosmos/tx/v1beta1/tx";

// A throwaway test key: sha256("aivm cosmjs golden key").
const keyHex = toHex(sha256(new TextEncoder().encode("aivm cosmjs golden key")));
const chainId = "nesa-golden";
const accountNumber = 11;
const sequence = 3;
const gasLimit = 150000;
const fee = { denom: "unes", amount: "3750" };
const memo = "cosmjs golden vector";
const timeoutHeight = 1234;

const wallet = await DirectSecp256k1Wallet.fromKey(fromHex(keyHex), "nesa");
const [account] = await wallet.getAccounts();
const send = { fromAddress: account.address, toAddress: "nesa1qyqszqgpqyqszqgpqyqszqgpqyqszqgpjnp7du", amount: [{ denom: "unes", amount: "1000" }] };
const bodyBytes = TxBody.encode(TxBody.fromPartial({
  messages: [{ typeUrl: "/cosmos.bank.v1beta1.MsgSend", value: MsgSend.encode(MsgSend.fromPartial(send)).finish() }],
  memo,
  timeoutHeight: BigInt(timeoutHeight),
})).finish();
const pubkey = encodePubkey(encodeSecp256k1Pubkey(account.pubkey));
const authInfoBytes = makeAuthInfoBytes([{ pubkey, sequence }], [fee], gasLimit, undefined, undefined);
const signDoc = makeSignDoc(bodyBytes, authInfoBytes, chainId, accountNumber);
const signed = await wallet.signDirect(account.address, signDoc);
const signature = Buffer.from(signed.signature.signature, "base64");
const txBytes = TxRaw.encode({ bodyBytes, authInfoBytes, signatures: [signature] }).finish();

process.stdout.write(JSON.stringify({
  keyHex, chainId, accountNumber, sequence, gasLimit, fee, memo, timeoutHeight, send,
  bodyBytesHex: toHex(bodyBytes),
  authInfoBytesHex: toHex(authInfoBytes),
  signBytesHex: toHex(makeSignBytes(signDoc)),
  signatureHex: toHex(signature),
  txHex: toHex(txBytes),
}, null, 2) + "\n");
