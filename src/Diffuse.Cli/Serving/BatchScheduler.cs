namespace Diffuse.Cli.Serving;

/// <summary>
/// The queue and worker of one model. Requests wait in a bounded queue. With batching on, the worker starts every
/// waiting sample request as soon as the rows of the running ones leave room (<see cref="ServeOptions.MaxBatch"/>
/// samples), whatever its sampler or steps, and answers the network calls of all running requests with one evaluation
/// per round (<see cref="NetworkPool"/>): a request joins at its first step and leaves when it ends. Without batching
/// one request runs at a time. Editing requests (<see cref="EditingJob"/>) run alone in their turn, once the running
/// sample requests have finished.
/// </summary>
internal sealed class BatchScheduler : IDisposable
{
    private readonly ServedModel _model;
    private readonly ServeOptions _options;
    private readonly NetworkPool _pool;
    private readonly LinkedList<QueuedJob> _waiting = new();
    private readonly object _gate = new();
    private readonly Thread _worker;
    private bool _stopping, _editing;
    private long _runs, _jobsRun;
    private int _runningRows;

    public BatchScheduler(ServedModel model, ServeOptions options)
    {
        _model = model;
        _options = options;
        _pool = new NetworkPool(model);
        _worker = new Thread(Work) { IsBackground = true, Name = $"diffuse serve: {model.Name}" };
        _worker.Start();
    }

    /// <summary>Requests waiting (not yet running).</summary>
    public int Waiting
    {
        get { lock (_gate) return _waiting.Count; }
    }

    /// <summary>Whether a request is running.</summary>
    public bool Busy
    {
        get { lock (_gate) return _editing || _pool.Running > 0; }
    }

    /// <summary>
    /// Busy periods (from idle to idle) and requests served in them: their ratio is the mean number of requests that
    /// shared the network.
    /// </summary>
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
            Monitor.PulseAll(_gate);
        }
    }

    private void Work()
    {
        while (true)
        {
            EditingJob? editing;
            lock (_gate)
            {
                while (true)
                {
                    editing = Admit();
                    if (editing is not null || _pool.Running > 0) break;
                    if (_stopping) return;
                    Monitor.Wait(_gate);
                }
            }
            if (editing is null)
            {
                _pool.EvaluateRound();
                continue;
            }
            try
            {
                editing.Run();
            }
            catch (Exception e)
            {
                editing.Fail(e);
            }
            finally
            {
                lock (_gate) _editing = false;
            }
        }
    }

    /// <summary>
    /// Starts the waiting sample requests that fit beside the running ones, oldest first; returns an editing request
    /// when it is the oldest and nothing runs (called under the lock).
    /// </summary>
    private EditingJob? Admit()
    {
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
        while (_waiting.First is { } first && !_stopping)
        {
            bool idle = _pool.Running == 0;
            if (first.Value is EditingJob editing)
            {
                if (!idle) return null;
                _waiting.RemoveFirst();
                _editing = true;
                _runs++;
                _jobsRun++;
                return editing;
            }
            var job = (SampleJob)first.Value;
            bool fits = _options.Batching && _runningRows + job.Spec.Count <= _options.MaxBatch;
            if (!idle && !fits) return null;
            _waiting.RemoveFirst();
            if (idle) _runs++;
            _jobsRun++;
            _runningRows += job.Spec.Count;
            int rows = job.Spec.Count;
            _pool.Start(job, () =>
            {
                lock (_gate)
                {
                    _runningRows -= rows;
                    Monitor.PulseAll(_gate);
                }
            });
        }
        return null;
    }

    /// <summary>Stops the worker once the running requests have ended; requests still waiting are cancelled.</summary>
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
