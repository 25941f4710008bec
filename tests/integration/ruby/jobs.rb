# Sidekiq job classes and Redis settings shared by the test worker and clients.
# Works with Sidekiq 6.4 (Debian 12) and 7.3 (Debian 13).
require "sidekiq"

Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)

REDIS_SETTINGS = { url: ENV.fetch("REDIS_URL") }
REDIS_SETTINGS[:namespace] = ENV["SIDEKIQ_NS"] unless ENV.fetch("SIDEKIQ_NS", "").empty?

Sidekiq.configure_server { |config| config.redis = REDIS_SETTINGS }
Sidekiq.configure_client { |config| config.redis = REDIS_SETTINGS }

class OkJob
  include Sidekiq::Job
  def perform(*); end
end

# Fails once and waits an hour before its retry, so the retry set stays put.
class RetryJob
  include Sidekiq::Job
  sidekiq_options retry: 5
  sidekiq_retry_in { |*| 3600 }
  def perform(*)
    raise "statusbot test: fails into the retry set"
  end
end

# No retries: the first failure sends it to the dead set.
class DeadJob
  include Sidekiq::Job
  sidekiq_options retry: 0
  def perform(*)
    raise "statusbot test: fails into the dead set"
  end
end

# Keeps one thread busy.
class SlowJob
  include Sidekiq::Job
  def perform(seconds)
    sleep seconds
  end
end
