/*
Copyright 2026 The aivm-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package artifact fetches model artifacts into a node-local,
// content-addressed cache and keeps that cache within a size limit.
//
// # Sources
//
// A source is a URI with one of these schemes:
//
//   - https://host/path and http://host/path: fetched with GET; an optional
//     bearer token is sent in the Authorization header, over https only.
//   - file:///abs/path: a file on the node itself.
//   - hf://<namespace>/<repo>/<file>[@<revision>]: a file in a Hugging Face
//     repository, resolved against a base URL (https://huggingface.co by
//     default, so mirrors work) to <base>/<namespace>/<repo>/resolve/<revision>/<file>.
//     The revision defaults to "main"; <file> may contain slashes.
//
// Credentials never travel inside a URI (URIs with user information are
// rejected); they are passed as a [Token], whose printed forms are redacted.
// A token never travels in cleartext: a plain http source with a token, and
// a redirect from a request with a token to plain http, are refused with an
// [InsecureTokenError]; a redirect to another host goes without the token.
//
// # Cache layout
//
// A [Cache] rooted at dir holds:
//
//	dir/sha256/<hex>         verified blobs, read-only, named by their sha256
//	dir/tmp/<hex>.partial    a download in progress
//	dir/locks/<hex>.fetch    held (exclusive flock) while <hex> is downloaded
//	dir/locks/<hex>.pin      held (shared flock) by every user of <hex>
//
// Bytes stream into the partial file while they are hashed; only when the
// sha256 matches is the file synced and renamed to dir/sha256/<hex>, so a blob
// under that name is always complete and verified. A mismatch deletes the
// partial file and returns a *[DigestMismatchError].
//
// # Concurrency
//
// Fetches of one digest in one process share a single download; fetches in
// different processes (the node agent and job pods share the directory) are
// serialized by the fetch lock, and the later one finds the blob in place.
//
// # Pinning and garbage collection
//
// [Cache.GC] evicts the least recently used blobs until the cache fits its
// limit, and never evicts a pinned blob. A running job pins its model for as
// long as it uses it:
//
//	pin, err := cache.Pin(digest) // before fetching, so GC cannot race the fetch
//	if err != nil { ... }
//	defer pin.Release()
//	res, err := fetcher.Fetch(ctx, artifact.Request{Source: uri, Digest: digest})
//	// ... run the engine on res.Path ...
//
// A pin is a shared flock on dir/locks/<hex>.pin, so it works across
// processes and containers that mount the same directory, and the kernel
// drops it when the holder exits, even after a crash: a dead job never keeps
// a model pinned.
package artifact
