using System.Runtime.ExceptionServices;
using Diffuse.Denoisers;
using Diffuse.Runtime;
using static TorchSharp.torch;

namespace Diffuse.Cli.Serving;

/// <summary>
/// Continuous batching of one model's network: every running request samples on its own thread, exactly as
/// <c>diffuse sample</c> would (its own sampler, levels, guidance and noise), through a view of the model
/// (<see cref="DiffusionModel.ThroughNetwork"/>) whose network calls land here. The model's worker collects the calls of
/// all running requests and answers them with one network evaluation: rows of different samplers, step counts, noise
/// levels and classes share it, since the network takes a noise conditioning and a class per row. A request joins at
/// its first step, whenever it arrives; one that finishes or is cancelled leaves at once.
/// </summary>
internal sealed class NetworkPool
{
    [ThreadStatic] private static SampleJob? _currentJob;

    private readonly ServedModel _model;
    private readonly ConditionedNetwork _network;
    private readonly object _gate = new();
    private readonly List<Call> _pending = new();
    private int _running;

    public NetworkPool(ServedModel model)
    {
        _model = model;
        _network = ConditionedNetwork.From(model.Model.Network);
        View = model.Model.ThroughNetwork(Submit);
    }

    /// <summary>The model as the running requests see it: every network call goes through this pool.</summary>
    public DiffusionModel View { get; }

    /// <summary>Requests that may still call the network.</summary>
    public int Running
    {
        get { lock (_gate) return _running; }
    }

    /// <summary>Starts <paramref name="job"/> on its own thread; <paramref name="onEnd"/> runs when it has left the pool.</summary>
    public void Start(SampleJob job, Action onEnd)
    {
        lock (_gate) _running++;
        var thread = new Thread(() =>
        {
            _currentJob = job;
            try
            {
                RequestRun.Run(View, job);
            }
            catch (Exception e)
            {
                job.Fail(e);
            }
            finally
            {
                _currentJob = null;
                lock (_gate)
                {
                    _running--;
                    Monitor.PulseAll(_gate);
                }
                onEnd();
            }
        })
        { IsBackground = true, Name = $"diffuse serve: {_model.Name} request" };
        thread.Start();
    }

    /// <summary>
    /// Waits until every running request is waiting for the network (or has left), then evaluates all their calls as
    /// one batch and answers them. Returns false when no request is running.
    /// </summary>
    public bool EvaluateRound()
    {
        List<Call> calls;
        lock (_gate)
        {
            while (_running > 0 && _pending.Count < _running) Monitor.Wait(_gate);
            if (_pending.Count == 0) return false;
            calls = new List<Call>(_pending);
            _pending.Clear();
        }
        try
        {
            Evaluate(calls);
        }
        catch (Exception e)
        {
            foreach (var call in calls) call.Error = ExceptionDispatchInfo.Capture(e);
        }
        foreach (var call in calls) call.Done.Set();
        return true;
    }

    /// <summary>One evaluation of the network on the rows of every call: calls with labels and calls without are two forward passes.</summary>
    private void Evaluate(List<Call> calls)
    {
        TorchThreads.Apply(_model.Model.IsImage);
        using var noGrad = no_grad();
        foreach (var group in calls.GroupBy(c => c.Classes is null))
        {
            using var scope = NewDisposeScope();
            var members = group.ToList();
            // The samples that share this evaluation (a guided sample's two rows count once), as each request reports it.
            int samples = members.Select(c => c.Job).OfType<SampleJob>().Distinct().Sum(j => j.Spec.Count);
            foreach (var call in members)
                if (call.Job is { } job) job.BatchRows = Math.Max(job.BatchRows, samples);
            var input = members.Count == 1 ? members[0].Input : cat(members.Select(c => c.Input).ToList(), 0);
            var conditioning = members.Count == 1 ? members[0].Conditioning : cat(members.Select(c => c.Conditioning).ToList(), 0);
            Tensor? classes = group.Key ? null : members.Count == 1 ? members[0].Classes : cat(members.Select(c => c.Classes!).ToList(), 0);
            var output = _network.Call(input, conditioning, classes);
            long start = 0;
            foreach (var call in members)
            {
                long count = call.Input.shape[0];
                call.Output = (members.Count == 1 ? output : output.narrow(0, start, count).clone()).DetachFromDisposeScope();
                start += count;
            }
        }
    }

    /// <summary>The network call of a running request (on its thread): waits for the round that evaluates it.</summary>
    private Tensor Submit(Tensor input, Tensor conditioning, Tensor? classes)
    {
        using var call = new Call(input, conditioning, classes, _currentJob);
        lock (_gate)
        {
            _pending.Add(call);
            // Only the worker waits on the gate; each caller waits on its own call.
            if (_pending.Count >= _running) Monitor.Pulse(_gate);
        }
        call.Done.Wait();
        call.Error?.Throw();
        // The output was made on the worker's thread outside any scope: hand the caller a handle in its own scope.
        var output = call.Output!;
        var owned = output.alias();
        output.Dispose();
        return owned;
    }

    private sealed class Call(Tensor input, Tensor conditioning, Tensor? classes, SampleJob? job) : IDisposable
    {
        public Tensor Input { get; } = input;

        public Tensor Conditioning { get; } = conditioning;

        public Tensor? Classes { get; } = classes;

        public SampleJob? Job { get; } = job;

        public Tensor? Output { get; set; }

        public ExceptionDispatchInfo? Error { get; set; }

        /// <summary>Set by the worker once <see cref="Output"/> or <see cref="Error"/> is there.</summary>
        public ManualResetEventSlim Done { get; } = new();

        public void Dispose() => Done.Dispose();
    }
}
