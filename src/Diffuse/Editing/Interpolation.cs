using static TorchSharp.torch;

namespace Diffuse.Editing;

/// <summary>
/// Paths between two latents. Latents of a diffusion model are about N(0, I) in D dimensions, so nearly all of them lie
/// on a thin shell of radius √D; the straight line between two of them cuts inside the shell (at t = ½ its norm is
/// about √(D/2) for independent latents, cos θ ≈ 0), where the decoder has never seen a latent and returns a faded,
/// blurred image. Spherical interpolation (Shoemake 1985; used for diffusion latents by Song et al. 2021, §5.3) moves
/// along the great circle instead and keeps the norm when both ends have the same norm.
/// </summary>
public static class Interpolation
{
    /// <summary>
    /// slerp(a, b; t) = sin((1 − t)·θ)/sin θ·a + sin(t·θ)/sin θ·b per row, with θ the angle between the rows of
    /// <paramref name="a"/> and <paramref name="b"/> [B, ...] (the straight line when they are parallel).
    /// </summary>
    public static Tensor Slerp(Tensor a, Tensor b, double t)
    {
        using var scope = NewDisposeScope();
        var fa = a.flatten(1).to_type(ScalarType.Float64);
        var fb = b.flatten(1).to_type(ScalarType.Float64);
        var cos = ((fa * fb).sum(1) / (fa.norm(1) * fb.norm(1)).clamp_min(1e-300)).clamp(-1, 1);
        var theta = cos.acos();
        var sin = theta.sin();
        var parallel = sin.abs() < 1e-7;
        var wa = where(parallel, full_like(theta, 1 - t), ((1 - t) * theta).sin() / sin);
        var wb = where(parallel, full_like(theta, t), (t * theta).sin() / sin);
        var result = (wa.unsqueeze(1) * fa + wb.unsqueeze(1) * fb).to_type(a.dtype).reshape(a.shape);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>lerp(a, b; t) = (1 − t)·a + t·b.</summary>
    public static Tensor Lerp(Tensor a, Tensor b, double t) => (1 - t) * a + t * b;

    /// <summary>
    /// <paramref name="frames"/> points from a to b (both included, t = k/(frames − 1)) for one pair of latents, each one
    /// example [...]: [frames, ...], by <see cref="Slerp"/> or, with <paramref name="linear"/>, <see cref="Lerp"/>.
    /// </summary>
    /// <exception cref="DiffuseException">Fewer than two frames, or latents of different shapes.</exception>
    public static Tensor Path(Tensor a, Tensor b, int frames, bool linear = false)
    {
        if (frames < 2) throw new DiffuseException($"{Param.Of("Interpolation.Path(frames)", "frames")} must be at least 2, the two ends (got {frames}).");
        if (!a.shape.SequenceEqual(b.shape)) throw new DiffuseException($"the two latents have different shapes ([{string.Join(", ", a.shape)}] and [{string.Join(", ", b.shape)}]).");
        using var scope = NewDisposeScope();
        var ra = a.reshape(1, -1);
        var rb = b.reshape(1, -1);
        var rows = Enumerable.Range(0, frames).Select(k =>
        {
            double t = (double)k / (frames - 1);
            return linear ? Lerp(ra, rb, t) : Slerp(ra, rb, t);
        }).ToArray();
        var shape = new long[] { frames }.Concat(a.shape).ToArray();
        return cat(rows, 0).reshape(shape).MoveToOuterDisposeScope();
    }
}
