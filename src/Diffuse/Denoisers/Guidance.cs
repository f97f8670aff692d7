using Diffuse.Parameterization;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Denoisers;

/// <summary>A denoiser that can be conditioned on a class label per row.</summary>
public interface IConditionalDenoiser
{
    /// <summary>
    /// Denoises rows of <paramref name="z"/> at timestep index <paramref name="timestep"/> given class labels
    /// <paramref name="classes"/> [B] (int64); null means unconditional for every row.
    /// </summary>
    DenoiserOutput Denoise(Tensor z, int timestep, Tensor? classes);

    /// <summary>The same at a continuous noise level σ, with z in the variance-preserving scale (see <see cref="ISigmaDenoiser"/>).</summary>
    DenoiserOutput DenoiseAtSigma(Tensor z, double sigma, Tensor? classes);
}

/// <summary>
/// Classifier-free guidance (Ho and Salimans 2022, eq. 6) as a decorator: ε̃ = ε_uncond + s·(ε_cond − ε_uncond), and x0
/// from ε̃ through the conversion core. The scale s is diffusers' <c>guidance_scale</c>; the paper writes
/// ε̃ = (1 + w)·ε_cond − w·ε_uncond, so its w is s − 1 (Diffuse's default 1.5 is the paper's 0.5). s = 0 is the
/// unconditional model, s = 1 the conditional one (the paper's w = 0), s &gt; 1 trades diversity for fidelity. It turns a conditional denoiser and the labels of one batch into a plain
/// <see cref="IDenoiser"/>, so every sampler works with guidance unchanged.
/// </summary>
public sealed class ClassifierFreeGuidance : IDenoiser, ISigmaDenoiser
{
    private readonly IConditionalDenoiser _inner;
    private readonly Tensor _classes;
    private readonly double _scale;

    /// <summary>
    /// Guides <paramref name="inner"/> towards <paramref name="classes"/> [B] with scale <paramref name="scale"/> = s
    /// (1 the conditional model; Ho and Salimans' w = s − 1).
    /// </summary>
    public ClassifierFreeGuidance(IConditionalDenoiser inner, Tensor classes, double scale)
    {
        if (double.IsNaN(scale) || scale < 0) throw new DiffuseException($"the guidance scale must be zero or positive (got {scale}).");
        _inner = inner;
        _classes = classes;
        _scale = scale;
    }

    /// <inheritdoc />
    public DenoiserOutput Denoise(Tensor z, int timestep) =>
        Guide(z, (input, labels) => _inner.Denoise(input, timestep, labels));

    /// <inheritdoc />
    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma) =>
        Guide(z, (input, labels) => _inner.DenoiseAtSigma(input, sigma, labels));

    private DenoiserOutput Guide(Tensor z, Func<Tensor, Tensor?, DenoiserOutput> denoise)
    {
        if (_scale == 0) return denoise(z, null);
        if (_scale == 1) return denoise(z, _classes);
        using var scope = NewDisposeScope();
        // One batched call for both branches: rows [0, B) conditional, [B, 2B) unconditional (label −1).
        long b = z.shape[0];
        var labels = cat(new[] { _classes, full(b, -1L, dtype: ScalarType.Int64, device: _classes.device) });
        var both = denoise(cat(new[] { z, z }), labels);
        var epsCond = both.Eps.narrow(0, 0, b);
        var epsUncond = both.Eps.narrow(0, b, b);
        var eps = epsUncond + _scale * (epsCond - epsUncond);
        // For a fixed z, x̂0 is an affine function of ε̂ with slope −√(1 − ᾱ)/√ᾱ, so the same combination of the x0
        // estimates is the x0 of the guided ε; it stays defined at ᾱ = 0 (zero terminal SNR), where ε cannot give x0.
        var x0Uncond = both.X0.narrow(0, b, b);
        var x0 = x0Uncond + _scale * (both.X0.narrow(0, 0, b) - x0Uncond);
        // A learned variance is taken from the conditional branch, the one the guided step stands for.
        var fraction = both.VarianceFraction?.narrow(0, 0, b).MoveToOuterDisposeScope();
        return new DenoiserOutput(x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope()) { VarianceFraction = fraction };
    }
}
