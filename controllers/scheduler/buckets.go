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

package scheduler

// bucketBytes is the width of one free-memory bucket. A search for M bytes
// starts at M's bucket and skips every GPU (or node) in lower buckets
// without looking at it, so a decision costs the candidates near the fit,
// not the size of the cluster.
const bucketBytes int64 = 1 << 30

// bucketOf returns the bucket holding free memory m.
func bucketOf(m int64) int {
	if m <= 0 {
		return 0
	}
	return int(m / bucketBytes)
}

// loc is where an id sits in a bucketSet; bucket -1 means absent.
type loc struct {
	bucket int32
	pos    int32
}

// bucketSet keeps dense integer ids in buckets of free memory with O(1)
// insert, move and remove (swap with the last element of the bucket).
type bucketSet struct {
	buckets [][]int32
	where   []loc
}

// set puts id into bucket b, moving it if it is elsewhere.
func (s *bucketSet) set(id int32, b int) {
	for int(id) >= len(s.where) {
		s.where = append(s.where, loc{bucket: -1})
	}
	if l := s.where[id]; l.bucket == int32(b) {
		return
	}
	s.remove(id)
	for b >= len(s.buckets) {
		s.buckets = append(s.buckets, nil)
	}
	s.buckets[b] = append(s.buckets[b], id)
	s.where[id] = loc{bucket: int32(b), pos: int32(len(s.buckets[b]) - 1)}
}

// remove takes id out of its bucket, if it is in one.
func (s *bucketSet) remove(id int32) {
	if int(id) >= len(s.where) {
		return
	}
	l := s.where[id]
	if l.bucket < 0 {
		return
	}
	bk := s.buckets[l.bucket]
	last := bk[len(bk)-1]
	bk[l.pos] = last
	s.where[last] = l
	s.buckets[l.bucket] = bk[:len(bk)-1]
	s.where[id] = loc{bucket: -1}
}

// has reports whether id is in a bucket.
func (s *bucketSet) has(id int32) bool {
	return int(id) < len(s.where) && s.where[id].bucket >= 0
}

// top returns the highest bucket number that may hold ids (len-1).
func (s *bucketSet) top() int { return len(s.buckets) - 1 }
