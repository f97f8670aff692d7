using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Diffuse.Optimization;

/// <summary>
/// AdamW (Loshchilov and Hutter 2019, Algorithm 2): Adam moments with bias correction and decoupled weight decay.
/// Our own implementation so its whole state (moments and step) is plain tensors that checkpoints save exactly.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly Parameter[] _parameters;
    private readonly Tensor[] _m;
    private readonly Tensor[] _v;

    /// <summary>Creates the optimizer for <paramref name="parameters"/>; build it outside dispose scopes.</summary>
    public AdamW(IEnumerable<Parameter> parameters, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8)
    {
        _parameters = parameters.ToArray();
        _m = _parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
        _v = _parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
    }

    /// <summary>First-moment decay β1.</summary>
    public double Beta1 { get; }

    /// <summary>Second-moment decay β2.</summary>
    public double Beta2 { get; }

    /// <summary>The ε added to the denominator.</summary>
    public double Epsilon { get; }

    /// <summary>Number of steps taken (the t of the bias corrections).</summary>
    public long StepCount { get; internal set; }

    /// <summary>Applies one update with learning rate <paramref name="lr"/> and weight decay <paramref name="weightDecay"/> to parameters that have gradients.</summary>
    public void Step(double lr, double weightDecay)
    {
        StepCount++;
        double correction1 = 1 - Math.Pow(Beta1, StepCount);
        double correction2 = 1 - Math.Pow(Beta2, StepCount);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (int i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            var g = p.grad;
            if (g is null) continue;
            if (weightDecay != 0) p.mul_(1 - lr * weightDecay);
            _m[i].mul_(Beta1).add_(g, alpha: 1 - Beta1);
            _v[i].mul_(Beta2).addcmul_(g, g, value: 1 - Beta2);
            var denominator = (_v[i] / correction2).sqrt_().add_(Epsilon);
            p.addcdiv_(_m[i], denominator, value: -lr / correction1);
        }
    }

    /// <summary>Clears every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in _parameters)
        {
            var g = p.grad;
            if (g is not null) { g.zero_(); }
        }
    }

    /// <summary>The optimizer state as named tensors (the live tensors; copy to keep).</summary>
    public IEnumerable<(string Name, Tensor Value)> State()
    {
        for (int i = 0; i < _parameters.Length; i++)
        {
            yield return ($"m.{i}", _m[i]);
            yield return ($"v.{i}", _v[i]);
        }
    }

    /// <summary>Restores moments and the step count saved by <see cref="State"/>.</summary>
    public void Load(IReadOnlyDictionary<string, Tensor> state, long stepCount, string source)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < _parameters.Length; i++)
        {
            foreach (var (name, target) in new[] { ($"m.{i}", _m[i]), ($"v.{i}", _v[i]) })
            {
                if (!state.TryGetValue(name, out var value) || !value.shape.SequenceEqual(target.shape))
                    throw new DiffuseException($"{source} has no optimizer state '{name}' of shape [{string.Join(", ", target.shape)}]; it was written for another model. Start a new run without {Param.Of("Trainer.Resume")}.");
                target.copy_(value);
            }
        }
        StepCount = stepCount;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _m.Concat(_v)) t.Dispose();
    }
}
