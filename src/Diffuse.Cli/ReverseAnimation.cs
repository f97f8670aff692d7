using Diffuse.Imaging;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse.Cli;

/// <summary>
/// Records the reverse process of the first images of a sampling run and writes it as a GIF: states kept at up to
/// <see cref="MaxStates"/> steps, then <see cref="Frames"/> of them chosen evenly in visible change
/// (<see cref="Animations.SpacedByChange"/>: the mean absolute pixel change between kept states), each captioned with its
/// step, the finished images held for two seconds.
/// </summary>
internal sealed class ReverseAnimation : IDisposable
{
    /// <summary>The most states kept (every k-th step of a longer run).</summary>
    public const int MaxStates = 200;

    /// <summary>The most frames in the GIF.</summary>
    public const int Frames = 16;

    private readonly List<(int Step, int Count, Tensor Z)> states = [];
    private readonly List<double> change = [];
    private readonly int stride;
    private readonly int shown;

    /// <summary>Records every step of a run of <paramref name="steps"/> steps (or every k-th), for the first <paramref name="shown"/> images.</summary>
    public ReverseAnimation(int steps, int shown)
    {
        stride = Math.Max(1, (steps + MaxStates - 1) / MaxStates);
        this.shown = shown;
    }

    /// <summary>How many images each frame shows.</summary>
    public int Shown => shown;

    /// <summary>Keeps the state of a step of the first batch (clamped to [−1, 1]) when it is one of the recorded steps.</summary>
    public void Add(SamplerStep step)
    {
        if (step.Step % stride != 0 && step.Step != step.Count) return;
        if (states.Count > 0 && states[^1].Step == step.Step) return;
        using var scope = NewDisposeScope();
        var z = step.Z.narrow(0, 0, Math.Min(step.Z.shape[0], shown)).clamp(-1, 1).detach().clone();
        // In [0, 1] pixel units: half the mean absolute difference in model range.
        change.Add(states.Count == 0 ? 0 : (z - states[^1].Z).abs().mean().item<float>() / 2.0);
        states.Add((step.Step, step.Count, z.DetachFromDisposeScope()));
    }

    /// <summary>Writes the GIF and returns how many frames it holds.</summary>
    public int Save(string path, int columns, int scale)
    {
        if (states.Count == 0) throw new InvalidOperationException("no sampler step was recorded.");
        var chosen = Animations.SpacedByChange(change, Frames);
        var first = states[0].Z;
        int n = (int)first.shape[0], c = (int)first.shape[1], h = (int)first.shape[2], w = (int)first.shape[3];
        var frames = chosen.Select(i => new GridFrame(Pictures.ToUnit(states[i].Z), $"step {states[i].Step} of {states[i].Count}")).ToList();
        Animations.SaveGridAnimation(path, frames, n, c, h, w, Math.Min(columns, n), scale, delayCentiseconds: 12, holdLastCentiseconds: 200);
        return frames.Count;
    }

    /// <summary>Disposes the kept states.</summary>
    public void Dispose()
    {
        foreach (var (_, _, z) in states) z.Dispose();
        states.Clear();
    }
}
