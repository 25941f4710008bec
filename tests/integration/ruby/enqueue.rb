# Push jobs described by a JSON plan on stdin:
# [{"class": "OkJob", "queue": "default", "count": 3, "args": [], "in": 3600}, ...]
require_relative "jobs"
require "json"

JSON.parse($stdin.read).each do |item|
  klass = Object.const_get(item.fetch("class"))
  item.fetch("count").times do
    job = { "class" => klass, "queue" => item.fetch("queue"), "args" => item.fetch("args", []) }
    job["at"] = Time.now.to_f + item["in"] if item["in"]
    Sidekiq::Client.push(job) or raise "push refused: #{job.inspect}"
  end
end
