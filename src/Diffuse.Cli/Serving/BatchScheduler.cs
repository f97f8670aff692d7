namespace Diffuse.Cli.Serving;

/// <summary>
/// The queue and worker of one model. Requests wait in a bounded queue; the worker takes the oldest and, with
/// batching on, every waiting request of the same setting (<see cref="SampleSpec.BatchKey"/>) up to
/// <see cref="ServeOptions.MaxBatch"/> samples, and runs them as one batch: each network evaluation carries all their
/// rows (<see cref="CohortRun"/>). A request joins a batch only at its first step; one that arrives while a batch runs
/// waits for the next. Requests whose sampler draws noise at every step run alone, through the same library call as
/// <c>diffuse sample</c>, and so do editing requests (<see cref="EditingJob"/>), in their turn.
/// </summary>
internal sealed class BatchScheduler : IDisposable
{
    private readonly ServedModel _model;
    private readonly ServeOptions _options;
    private readonly LinkedList<QueuedJob> _waiting = new();
    private readonly object _gate = new();
    private readonly Thread _worker;
    private bool _stopping;
    private long _runs, _jobsRun;
    private int _lastCohort = 1;

    /// <summary>
    /// How long the worker waits, after the first request of a run arrives, for the others of a busy stream to join
    /// it: clients that each send their next request when the last one returns arrive a few milliseconds apart, and
    /// without this wait the first would run alone while the rest queue behind it.
    /// </summary>
    public static readonly TimeSpan Gather = TimeSpan.FromMilliseconds(5);

    public BatchScheduler(ServedModel model, ServeOptions options)
    {
        _model = model;
        _options = options;
        _worker = new Thread(Work) { IsBackground = true, Name = $"diffuse serve: {model.Name}" };
        _worker.Start();
    }

    /// <summary>Requests waiting (not yet running).</summary>
    public int Waiting
    {
        get { lock (_gate) return _waiting.Count; }
    }

    /// <summary>Whether a run is in progress.</summary>
    public bool Busy { get; private set; }

    /// <summary>Runs made and requests served by them: their ratio is the mean batch, in requests.</summary>
    public (long Runs, long Jobs) Counts
    {
        get { lock (_gate) return (_runs, _jobsRun); }
    }

    /// <summary>Queues <paramref name="job"/>.</summary>
    /// <exception cref="ApiException">The queue is full (429) or the server is stopping (503).</exception>
    public void Enqueue(QueuedJob job)
    {
        lock (_gate)
        {
            if (_stopping) throw new ApiException(503, "shutting_down", "the server is shutting down; send the request to another instance or try again later.");
            if (_waiting.Count >= _options.QueueLimit)
                throw new ApiException(429, "queue_full", $"{_waiting.Count} requests are already waiting for {_model.Name}; try again shortly.") { RetryAfterSeconds = 1 };
            _waiting.AddLast(job);
            Monitor.Pulse(_gate);
        }
    }

    private void Work()
    {
        while (true)
        {
            List<QueuedJob> cohort;
            lock (_gate)
            {
                while (_waiting.Count == 0 && !_stopping) Monitor.Wait(_gate);
                if (_stopping) return;
                // Only when the last run was shared: a lone client is never kept waiting.
                var until = DateTime.UtcNow + Gather;
                while (_options.Batching && _lastCohort > 1 && _waiting.Count < _lastCohort && !_stopping && DateTime.UtcNow < until)
                    Monitor.Wait(_gate, Math.Max(0, (int)Math.Ceiling((until - DateTime.UtcNow).TotalMilliseconds)));
                if (_stopping) return;
                cohort = TakeCohort();
                _lastCohort = Math.Max(1, cohort.Count);
                if (cohort.Count == 0) continue;
                _runs++;
                _jobsRun += cohort.Count;
                Busy = true;
            }
            try
            {
                if (cohort[0] is EditingJob editing) editing.Run();
                else CohortRun.Run(_model.Model, cohort.Cast<SampleJob>().ToList());
            }
            catch (Exception e)
            {
                foreach (var job in cohort) job.Fail(e);
            }
            finally
            {
                Busy = false;
            }
        }
    }

    /// <summary>The oldest waiting request and, when it can share, every waiting one of its setting that fits (called under the lock).</summary>
    private List<QueuedJob> TakeCohort()
    {
        var cohort = new List<QueuedJob>();
        for (var node = _waiting.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.CancellationToken.IsCancellationRequested)
            {
                node.Value.Cancel();
                _waiting.Remove(node);
            }
            node = next;
        }
        if (_waiting.First is not { } first) return cohort;
        _waiting.RemoveFirst();
        cohort.Add(first.Value);
        if (first.Value is not SampleJob { Spec.BatchKey: { } key } sample || !_options.Batching) return cohort;
        int rows = sample.Spec.Count;
        for (var node = _waiting.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value is SampleJob { Spec: var spec } && spec.BatchKey == key && rows + spec.Count <= _options.MaxBatch)
            {
                cohort.Add(node.Value);
                rows += spec.Count;
                _waiting.Remove(node);
            }
            node = next;
        }
        return cohort;
    }

    /// <summary>Stops the worker after its current run; requests still waiting are cancelled.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            foreach (var job in _waiting) job.Cancel();
            _waiting.Clear();
            Monitor.PulseAll(_gate);
        }
        _worker.Join();
    }
}
