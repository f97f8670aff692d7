using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Training;

/// <summary>
/// An exponential moving average of a network's weights, kept in a second network of the same shape (the one used for
/// sampling): θ_ema ← d·θ_ema + (1 − d)·θ with the warm-up d = min(decay, (1 + k)/(10 + k)) at update k, so that early
/// averages are not dominated by the random initialisation. Buffers are copied.
/// </summary>
public static class ExponentialMovingAverage
{
    /// <summary>The decay used at update <paramref name="update"/> (0-based).</summary>
    public static double DecayAt(double decay, long update) => Math.Min(decay, (1.0 + update) / (10.0 + update));

    /// <summary>Moves <paramref name="average"/>'s parameters towards <paramref name="source"/>'s with decay <paramref name="decay"/>.</summary>
    public static void Update(nn.Module average, nn.Module source, double decay)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var target = average.state_dict();
        foreach (var (name, value) in source.state_dict())
        {
            var t = target[name];
            if (t.is_floating_point()) t.mul_(decay).add_(value, alpha: 1 - decay);
            else t.copy_(value);
        }
    }

    /// <summary>Copies every parameter and buffer of <paramref name="source"/> into <paramref name="target"/>.</summary>
    public static void CopyInto(nn.Module target, nn.Module source)
    {
        using var noGrad = no_grad();
        var targets = target.state_dict();
        foreach (var (name, value) in source.state_dict()) targets[name].copy_(value);
    }
}
