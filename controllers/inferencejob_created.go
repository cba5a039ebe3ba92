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

package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/aivm-dev/aivm-operator/api/v1alpha1"
)

// createdPods remembers, per job, the pods this process created. A job's
// pods are recorded in status with the first change written for them
// (running, or ending), not on creation: that saves a status write per
// pod. Until then this set is what tells a pod deleted before it started
// (its placement ends PodDeleted) from one never made (it is created).
// Entries stay until the job is deleted, not only until its status records
// the pod: a reconcile may read a cached copy of the job older than that
// record, and must not make the pod again from it. An entry is a job key
// and a pod name, small beside the job in the informer cache. After a
// restart the set is empty, and an unrecorded pod that is gone is made
// again under the same name.
type createdPods struct {
	mu   sync.Mutex
	jobs map[types.NamespacedName]jobPods
}

// jobPods are the pods made for one job, by its UID: a job deleted and
// made again under its name starts with none.
type jobPods struct {
	uid  types.UID
	pods map[string]bool
}

func (c *createdPods) add(job *v1alpha1.InferenceJob, pod string) {
	key := types.NamespacedName{Namespace: job.Namespace, Name: job.Name}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jobs == nil {
		c.jobs = map[types.NamespacedName]jobPods{}
	}
	jp := c.jobs[key]
	if jp.uid != job.UID {
		jp = jobPods{uid: job.UID, pods: map[string]bool{}}
		c.jobs[key] = jp
	}
	jp.pods[pod] = true
}

func (c *createdPods) has(job *v1alpha1.InferenceJob, pod string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	jp := c.jobs[types.NamespacedName{Namespace: job.Namespace, Name: job.Name}]
	return jp.uid == job.UID && jp.pods[pod]
}

// forgetJob drops a job that is gone or being deleted.
func (c *createdPods) forgetJob(job types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.jobs, job)
}
