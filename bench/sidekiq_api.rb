# frozen_string_literal: true

# Time what Sidekiq's own Ruby API costs for the figures one statusbot snapshot
# reports: Stats (every figure, so the lazy "slow" half is fetched too),
# Queue.all with size and latency, and ProcessSet (without pruning, read-only).
#
# Standalone:  REDIS_URL=redis://127.0.0.1:6379/0 ruby bench/sidekiq_api.rb [REPS]
#   warms up, times REPS snapshots and prints {"median_ms":…, "p95_ms":…} as JSON.
#
# Served (used by bench/snapshot_bench.py):  ruby bench/sidekiq_api.rb --serve URL...
#   one connection pool per URL; reads one command a line from stdin and answers
#   with one JSON line:
#     use I | warm I K | time I K (samples in ms) | ping I K (bare PING round trips, ms)
#     | sweep K (K snapshots of every database, alternating; samples per database)
#     | check I (the figures) | quit
require "sidekiq"
require "sidekiq/api"
require "json"

Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)

# Make Sidekiq's API use POOL. Sidekiq 7 takes a hash in `config.redis=`, and
# switches pools per thread (what Sidekiq::Client.via does); Sidekiq 6 takes the pool.
def use_pool(pool)
  if Sidekiq::VERSION.to_i >= 7
    Thread.current[:sidekiq_redis_pool] = pool
  else
    Sidekiq.configure_client { |config| config.redis = pool }
  end
end

def now_ms
  Process.clock_gettime(Process::CLOCK_MONOTONIC) * 1000.0
end

# One snapshot's worth of Sidekiq's API. Returns the figures so that nothing is
# optimised away and so that they can be compared with the bot's.
def snapshot
  stats = Sidekiq::Stats.new
  figures = {
    "processed" => stats.processed,
    "failed" => stats.failed,
    "scheduled" => stats.scheduled_size,
    "retries" => stats.retry_size,
    "dead" => stats.dead_size,
    "processes_size" => stats.processes_size,
    "enqueued" => stats.enqueued, # Stats 6.4 is lazy: this fetches the slow half
    "workers_size" => stats.workers_size,
  }
  figures["queues"] = Sidekiq::Queue.all.to_h { |q| [q.name, [q.size, q.latency]] }
  figures["busy"] = Sidekiq::ProcessSet.new(false).map { |p| p["busy"] }
  figures
end

def time_batch(count, &work)
  work ||= method(:snapshot)
  Array.new(count) do
    started = now_ms
    work.call
    now_ms - started
  end
end

# Time COUNT sweeps; a sweep is one snapshot of every database (order reversed every
# other sweep). Returns the samples per database.
def sweep(pools, count)
  samples = pools.map { [] }
  count.times do |number|
    order = (0...pools.size).to_a
    order.reverse! if number.odd?
    order.each do |index|
      use_pool(pools[index])
      started = now_ms
      snapshot
      samples[index] << now_ms - started
    end
  end
  samples
end

def summary(samples)
  sorted = samples.sort
  n = sorted.size
  median = n.odd? ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
  { "n" => n, "median_ms" => median, "p95_ms" => sorted[(0.95 * n).ceil - 1] }
end

def hello
  client = if defined?(RedisClient::VERSION)
             "redis-client #{RedisClient::VERSION}"
           else
             "redis #{Redis::VERSION}"
           end
  { "sidekiq" => Sidekiq::VERSION, "ruby" => RUBY_VERSION, "redis_gem" => client,
    "pid" => Process.pid }
end

def serve(urls)
  pools = urls.map { |url| Sidekiq::RedisConnection.create(url: url) }
  use_pool(pools.first)
  $stdout.sync = true
  puts JSON.generate(hello)
  $stdin.each_line do |line|
    command, index, count = line.split
    break if command.nil? || command == "quit"

    if command == "sweep"
      puts JSON.generate({ "samples_ms" => sweep(pools, Integer(index)) })
      next
    end

    use_pool(pools.fetch(Integer(index)))
    reply = case command
            when "use" then { "ok" => true }
            when "warm" then time_batch(Integer(count)) && { "ok" => true }
            when "time" then { "samples_ms" => time_batch(Integer(count)) }
            when "ping" then { "samples_ms" => time_batch(Integer(count)) { Sidekiq.redis(&:ping) } }
            when "check" then snapshot.merge("now" => Time.now.to_f)
            else { "error" => "unknown command #{command.inspect}" }
            end
    puts JSON.generate(reply)
  end
end

if ARGV.first == "--serve"
  serve(ARGV.drop(1))
else
  use_pool(Sidekiq::RedisConnection.create(url: ENV.fetch("REDIS_URL")))
  reps = Integer(ARGV.fetch(0, "200"))
  time_batch(20)
  puts JSON.generate(hello.merge(summary(time_batch(reps))))
end
