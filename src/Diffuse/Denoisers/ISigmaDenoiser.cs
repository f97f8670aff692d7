using Diffuse.Parameterization;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Denoisers;

/// <summary>
/// A denoiser at any continuous noise level, the currency of the σ-space samplers (Karras et al. 2022, §2: x = x0 + σ·ε,
/// D(x; σ) ≈ E[x0 | x]). Notation map: σ² = (1 − ᾱ)/ᾱ and ᾱ = 1/(1 + σ²), so the variance-exploding state x and the
/// variance-preserving state z of <see cref="IDenoiser"/> are related by z = √ᾱ·x = x/√(1 + σ²). The input is passed as
/// z because z stays finite at σ = +∞ (zero terminal SNR, ᾱ = 0) where x does not; the output's ε is the same noise in
/// both views: ε̂ = (x − x̂0)/σ = (z − √ᾱ·x̂0)/√(1 − ᾱ).
/// </summary>
public interface ISigmaDenoiser
{
    /// <summary>
    /// Denoises a batch <paramref name="z"/> [B, ...] (the variance-preserving input z = x/√(1 + σ²)) whose rows are all
    /// at noise level <paramref name="sigma"/> (0 &lt; σ ≤ +∞).
    /// </summary>
    DenoiserOutput DenoiseAtSigma(Tensor z, double sigma);
}

/// <summary>Ways to obtain an <see cref="ISigmaDenoiser"/> for any <see cref="IDenoiser"/>.</summary>
public static class SigmaDenoiser
{
    /// <summary>
    /// <paramref name="denoiser"/> itself when it already works at any noise level (every denoiser in this library does);
    /// otherwise an adapter that evaluates it at the trained timestep nearest in log σ (see <see cref="NearestTimestepDenoiser"/>).
    /// </summary>
    public static ISigmaDenoiser From(IDenoiser denoiser, NoiseSchedule schedule) =>
        denoiser as ISigmaDenoiser ?? new NearestTimestepDenoiser(denoiser, schedule);
}

/// <summary>
/// Adapts a denoiser that only accepts trained timesteps to continuous noise levels by quantisation (k-diffusion's
/// quantize option): the input at level σ is rescaled to the signal scale √ᾱ_n of the trained timestep n nearest in
/// log σ, denoised there, and ε is recomputed at the true σ. Exact when σ is a trained level, an approximation between
/// them; denoisers that implement <see cref="ISigmaDenoiser"/> themselves are exact everywhere.
/// </summary>
public sealed class NearestTimestepDenoiser : ISigmaDenoiser
{
    private readonly IDenoiser _inner;
    private readonly NoiseSchedule _schedule;

    /// <summary>Wraps <paramref name="inner"/>, which works on the timesteps of <paramref name="schedule"/>.</summary>
    public NearestTimestepDenoiser(IDenoiser inner, NoiseSchedule schedule)
    {
        _inner = inner;
        _schedule = schedule;
    }

    /// <inheritdoc />
    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma)
    {
        int n = (int)Math.Round(_schedule.TimestepOfSigma(sigma), MidpointRounding.AwayFromZero);
        if (_schedule.Sigma(n) == sigma) return _inner.Denoise(z, n);
        if (double.IsPositiveInfinity(sigma))
            throw new DiffuseException("σ = ∞ (pure noise) needs a schedule with zero terminal SNR.");
        using var scope = NewDisposeScope();
        double alphaBar = NoiseSchedule.AlphaBarOfSigma(sigma);
        var (x0, _) = _inner.Denoise(z * Math.Sqrt(_schedule.AlphaBar(n) / alphaBar), n);
        var eps = PredictionConversion.EpsFromX0(x0, z, tensor(alphaBar, dtype: z.dtype, device: z.device));
        return new DenoiserOutput(x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
    }
}
