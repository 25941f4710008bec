# Print what Sidekiq's own Ruby API reports, as JSON, for comparison with the bot.
require_relative "jobs"
require "sidekiq/api"
require "json"

stats = Sidekiq::Stats.new
today = Time.now.utc.strftime("%Y-%m-%d")
history = Sidekiq::Stats::History.new(1)
out = {
  "sidekiq_version" => Sidekiq::VERSION,
  "processed" => stats.processed,
  "failed" => stats.failed,
  "processed_today" => history.processed.fetch(today, 0),
  "failed_today" => history.failed.fetch(today, 0),
  "scheduled" => stats.scheduled_size,
  "retries" => stats.retry_size,
  "dead" => stats.dead_size,
  "enqueued" => stats.enqueued,
  "processes_size" => stats.processes_size,
  "workers_size" => stats.workers_size,
  "queues" => Sidekiq::Queue.all.map { |q|
    { "name" => q.name, "size" => q.size, "latency" => q.latency, "paused" => q.paused? }
  },
  # false: do not prune identities whose heartbeat expired (stay read-only).
  "processes" => Sidekiq::ProcessSet.new(false).map { |p|
    { "identity" => p.identity, "hostname" => p["hostname"], "pid" => p["pid"],
      "tag" => p["tag"], "queues" => p["queues"], "concurrency" => p["concurrency"],
      "busy" => p["busy"], "beat" => p["beat"], "quiet" => p["quiet"], "rss" => p["rss"] }
  },
  "now" => Time.now.to_f,
}
puts JSON.generate(out)
