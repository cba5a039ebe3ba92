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

// createdPods remembers, per job, the pods this process created that the
// job's status does not record yet. A job's pods are recorded in status
// with the first change written for them (running, or ending), not on
// creation: that saves a status write per pod. Until then this set is what
// tells a pod deleted before it started (its placement ends PodDeleted)
// from one never made (it is created). After a restart the set is empty,
// and an unrecorded pod that is gone is made again under the same name.
type createdPods struct {
	mu   sync.Mutex
	pods map[types.NamespacedName]map[string]bool
}

func (c *createdPods) add(job types.NamespacedName, pod string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pods == nil {
		c.pods = map[types.NamespacedName]map[string]bool{}
	}
	if c.pods[job] == nil {
		c.pods[job] = map[string]bool{}
	}
	c.pods[job][pod] = true
}

func (c *createdPods) has(job types.NamespacedName, pod string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pods[job][pod]
}

// forgetRecorded drops the job's pods that its status now records or whose
// placements ended.
func (c *createdPods) forgetRecorded(job *v1alpha1.InferenceJob) {
	key := types.NamespacedName{Namespace: job.Namespace, Name: job.Name}
	c.mu.Lock()
	defer c.mu.Unlock()
	pods := c.pods[key]
	if pods == nil {
		return
	}
	open := map[string]bool{}
	for _, p := range job.Status.Placements {
		if p.PodUID == "" && p.Outcome == "" {
			open[PodName(job.Name, p.Attempt, p.Member, isCommittee(job, p.Attempt))] = true
		}
	}
	for name := range pods {
		if !open[name] {
			delete(pods, name)
		}
	}
	if len(pods) == 0 {
		delete(c.pods, key)
	}
}

// forgetJob drops a job that is gone or being deleted.
func (c *createdPods) forgetJob(job types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pods, job)
}
