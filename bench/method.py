"""How each figure is measured: the notes under the table in docs/benchmarks.md."""

METHOD = """## How each figure is measured

Everything runs on this one machine, on the embedded defaults: SQLite (WAL), the in-memory channel
layer, the filesystem store, `DEBUG` on, one daphne process per server (`bench/serve.py`, which is
daphne plus counters). The load generators share the machine's cores with the server, so every
latency here includes their scheduling too.

**The executor.** Modal's cloud cannot be reached from here, so every figure that polls uses the
production `ModalBackend` over a fake of its four Modal requests (checked against the tests' stand-in
of Modal's server), behind the tests' fault-injecting wrapper set to add **50 ms to every call**
(about Modal's round trip). Every active job's call reads as running.

1. **Progress latency.** Each job's worker is the real `ProgressReporter` writing `progress.json`
   to the store once a second (the worker's own throttle), at a random phase per job; each job's
   owner has one socket open. Latency is the time the client received the change minus the
   record's `worker_time`, which the change carries as `progress_at`. With a 1 s socket tick and a
   1 s claim interval the expected value is about half a tick plus the work of one tick. "Records
   written" can exceed "changes received": a record replaced before any tick read it is never sent,
   by design (the user sees the newest).
2. **Read amplification.** One active job, its progress record rewritten every second, watched by
   1, 10 and 50 sockets of its owner (tabs), then by as many HTTP pollers of
   `GET /api/exports/<id>/` once a second (what the tray does while its socket is down). Rates are
   counted in the server over a 15 s window after a 2 s warm-up. **Baseline:** the same pollers
   against a server whose claim intervals are 0, so every request reads the record and asks the
   executor itself, as celery-progress does with its result backend. The goal "flat" is read as:
   at most one store read per progress interval (1 s) and one poll per executor interval (3 s),
   plus 10 %, whatever the number of watchers; the counts are small, so one poll more or less in the
   window moves a rate by 0.07/s.
3. **reconcile_exports.** 10,000 processing jobs (2,000 users with five each), every check due, one
   pass in a fresh process exactly as cron runs it (`bench/reconcile_pass.py`). Queries are counted
   on every thread's connection. Memory is the process's peak resident set (`VmHWM`: Django, the
   Modal SDK, the fake's table of 10,000 calls and the command together) and, in brackets, how far
   it rose above the resident set just before the command started: the command's own cost. Then
   1,000,000 finished jobs are inserted beside them and the pass is repeated: the cost must not move.
4. **API latency.** One user with 20 processing jobs (one per project) and 10,000 jobs finished
   three days ago. 300 sequential requests per endpoint over one keep-alive HTTP connection, after
   10 to warm up. Each request runs the lazy check, so about every third second a request asks the
   executor about the due jobs (all at once, within the 1 s request budget). Queries per request
   are counted in-process through the same views, before and after the history is added, in the
   two states a request can find: no check due (the usual look) and every check due (the look that
   claims them: one UPDATE per job).
5. **Fan-out.** One user with 500 sockets open on one daphne (as 500 tabs would). A change is a
   dismiss of a finished job sent over HTTP as the page sends it; the time runs from sending the
   request to the moment the 500th socket has the change. Memory per socket is the server's resident
   set after the 500 connected minus before, divided by 500. No goal was set for this figure.
6. **Pipeline overhead.** The three demo clips (`seed_demo`: 20 s, 1280x720, 30 fps, AAC). The whole
   worker (`run_export`: inputs copied from the store, ring images, ffmpeg with `-progress`, probe,
   upload, progress records) against one hand-written ffmpeg command per kind with the same encoder
   settings (libx264 `veryfast` CRF 20, AAC 160k 48 kHz stereo, faststart), written knowing the inputs
   need no frame-rate, scale or audio conversion; the outputs are probed to have the same size and
   length. Medians of 3 runs each.
7. **A page beside open sockets.** One user with five processing jobs opens 200 sockets on one daphne
   (connected 25 at a time) and keeps them listening, so every socket ticks each second: a session
   check and a reconcile, on the consumer's worker threads. After 3 s, a second user's 300 sequential
   `GET /api/projects/` over one keep-alive connection are timed; the baseline is the same 300
   requests in the same run before any socket opened.
8. **Time left.** The three kinds are rendered one after another by the local executor (a worker
   process each, as in production) from the demo's three patterns and tones at 640x360, made cheaply
   (20 s rendered, looped by stream copy): `multi_clip` joins 80 s of each (240 s), `framing_ai`
   (9:16, 640 high) and `overlay` (two rings) take the first pattern's 160 s, so each renders for
   about half a minute. The pace column is the slowest and fastest rendering rate over tenths of the
   media: the colour bars render about twice as fast as the other two patterns, and the machine is
   shared, so the pace moves within a job as it would under a busy neighbour. Each job's real
   `progress.log` is kept (`var/bench/eta/`) and replayed through the worker's estimator
   (`modal_jobs/eta.py`, counting the work each record carries: `multi_clip`'s 240 s are long enough
   for the worker to sample one second of each clip first, `pipeline.part_costs`); the replay
   matches the `remaining_seconds` the worker wrote to within 0.05 s (their rounding). The true time
   left at a record is the job's last `worker_time` (its 100 % record) minus the record's; the error
   is |estimate - true| / true, over the records at 20 % or more **with at least 5 s truly left**: in
   the last seconds a tenth of a second is a large fraction, and the estimate has counted down to
   about zero anyway. A counted record without an
   estimate is a blank, not an error. The largest step is the largest move of an estimate from
   where the previous one had counted down to, as a fraction of that (while 5 s or more). The three
   kinds together pool their records. **Baseline:** the browser's old estimate (`etaFor` before
   issue 17: percent per second since the page first saw the job, nothing for its first 3 s), for 20
   pages per job opened at random times (seeded) before its last counted record, over the same
   records from each page's opening, in raw seconds (the page rounded them to minutes). `results.json`
   also holds the same figures for an EWMA of the rate (10 s time constant), the alternative.
9. **The workers' signed events** (`bench/worker_events.py`), each against the same run without them.
   *Latency:* figure 1's 50 jobs with every record also sent by the worker's own `EventSender` (the
   bench process plays all 50 workers, on the same two cores as the server). *Finalization lag:* 20
   jobs whose output is stored, then their result event sent one every 50 ms with nobody looking and
   no cron; the lag is the backend's `completed` event minus the result's `finished_at`; the baseline
   stores 10 results with no event and counts the jobs still processing afterwards. *Executor polls:*
   one job, its owner's socket open, its worker writing (and sending) a record each tick, with time ten
   times faster than life (tick, claim intervals, backoff and writes all a tenth), so a 10-minute
   export takes a minute here; counted by the server. *Throughput:* 1, 4 and 16 senders posting
   signed progress events for their own jobs back to back for 8 s; every request timed.
10. **A long export in chunks** (`bench/chunked_render.py`), against the same export rendered whole in
   the same run. Three 60 s clips at 640x360 (`testsrc2`, `smptehdbars`, `testsrc` with tones), one
   3-minute multi-clip export. *Speed-up:* on the local executor with each worker pinned to one core of
   its own (`cores_per_worker=1`, as each Modal container has its own CPUs; unpinned, one ffmpeg 9 keeps
   both cores of this machine busy and two renders only share them): the whole render on one worker
   against 45 s chunks on two, spawn to the call's end. *Overhead:* the ffmpeg CPU seconds of the chunks,
   the audio and the join, rendered one after another in the bench process, over the whole render's.
   Three runs each; medians. *The 40-minute model* (`bench/chunk_model.py`) is a model, not a run on Modal:
   measured here, the seconds per media second of 4 s chunks of a 12 s 1080p `testsrc2` clip (on one
   core, and on the whole machine), of its audio and of its join, and a chunk's bytes per media second;
   stated, a container start of 10 s, a spawn of 0.1 s, 100 MB/s to and from the store, inputs of 12
   Mbit/s with a keyframe every 2 s. It adds up the path the code takes: the spawns, then a chunk
   container's start, its read of its window of its clips, render and store; beside it the export's
   own fetch of every clip and its audio; then fetching the chunks, the join and storing the output.
   40 containers of the machine's speed (the function asks for 8 CPUs), against the same model with
   Remotion Lambda's published configuration: 200 functions of about one core, 3.5 s cold start. A test
   pattern encodes faster than camera footage, so the row also says how slow a chunk may render before
   the 4 minutes are missed.
"""
