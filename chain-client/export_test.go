package chainclient

// SetBatchStoredHook makes c call f with a batch's transaction hash once the
// batch is signed and stored in the outbox, before its first broadcast. Call
// it before Run.
func SetBatchStoredHook(c *Client, f func(txHash string)) { c.batchStored = f }
