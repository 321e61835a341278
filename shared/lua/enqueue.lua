-- After jobs.lua (whose `enqueue` it runs on all of KEYS and ARGV): the alerts of one call of
-- `shared.jobs.enqueue_alert(s)`. Returns how many were handed to a drain or given a job.
return enqueue(1, 1)
