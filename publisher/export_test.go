package publisher

// RestoreJobs is the durable consumer of restore jobs the daemon takes
// them from, for tests that hand a job back as a restorer would.
var RestoreJobs = (*Publisher).restoreJobs
