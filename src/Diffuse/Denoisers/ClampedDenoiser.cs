using Diffuse.Parameterization;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Denoisers;

/// <summary>
/// A decorator that projects the x0 estimate onto a box [lower, upper] per dimension and recomputes ε from it. The
/// exact denoiser E[x0 | z_t] always lies in the convex hull of the data's support, hence inside the data's bounding
/// box, so this projection only removes error: it stops the amplification of ε error at the noisiest steps
/// (x̂0 = (z − √(1 − ᾱ)·ε̂)/√ᾱ with ᾱ near 0) that otherwise throws a few samples far outside the data. It is also the
/// one way the samplers clip x0 to [−c, c] (<see cref="Sampling.SamplerOptions.ClipX0"/>, see <see cref="Clip(IDenoiser, NoiseSchedule, double?)"/>).
/// </summary>
public sealed class ClampedDenoiser : IDenoiser, ISigmaDenoiser
{
    private readonly IDenoiser? _inner;
    private readonly ISigmaDenoiser _innerAtSigma;
    private readonly NoiseSchedule? _schedule;
    private readonly float[] _lower;
    private readonly float[] _upper;
    private readonly double? _clip;   // a symmetric bound on every element, in place of the per-dimension box

    /// <summary>Wraps <paramref name="inner"/>; bounds are per dimension of a vector sample, in model units.</summary>
    public ClampedDenoiser(IDenoiser inner, NoiseSchedule schedule, double[] lower, double[] upper)
    {
        if (lower.Length != upper.Length) throw new ArgumentException("lower and upper bounds need the same length");
        _inner = inner;
        _innerAtSigma = SigmaDenoiser.From(inner, schedule);
        _schedule = schedule;
        _lower = lower.Select(v => (float)v).ToArray();
        _upper = upper.Select(v => (float)v).ToArray();
    }

    private ClampedDenoiser(IDenoiser? inner, ISigmaDenoiser innerAtSigma, NoiseSchedule? schedule, double clip)
    {
        if (!(clip > 0)) throw new DiffuseException($"the x0 clip range must be positive (got {clip}).");
        _inner = inner;
        _innerAtSigma = innerAtSigma;
        _schedule = schedule;
        _lower = _upper = Array.Empty<float>();
        _clip = clip;
    }

    /// <summary>
    /// <paramref name="inner"/> with every element of its x0 estimate clamped to [−<paramref name="clip"/>, <paramref name="clip"/>]
    /// and ε recomputed (the samplers' <see cref="Sampling.SamplerOptions.ClipX0"/>); <paramref name="inner"/> itself when
    /// <paramref name="clip"/> is null.
    /// </summary>
    public static IDenoiser Clip(IDenoiser inner, NoiseSchedule schedule, double? clip) =>
        clip is { } c ? new ClampedDenoiser(inner, SigmaDenoiser.From(inner, schedule), schedule, c) : inner;

    /// <summary>The form of <see cref="Clip(IDenoiser, NoiseSchedule, double?)"/> for a denoiser at noise levels σ.</summary>
    public static ISigmaDenoiser Clip(ISigmaDenoiser inner, double? clip) =>
        clip is { } c ? new ClampedDenoiser(null, inner, null, c) : inner;

    /// <inheritdoc />
    public DenoiserOutput Denoise(Tensor z, int timestep)
    {
        if (_inner is null || _schedule is null) throw new InvalidOperationException("this clamp wraps a denoiser at noise levels σ only; call DenoiseAtSigma.");
        using var scope = NewDisposeScope();
        return Project(_inner.Denoise(z, timestep), z, _schedule.AlphaBar(timestep));
    }

    /// <inheritdoc />
    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma)
    {
        using var scope = NewDisposeScope();
        return Project(_innerAtSigma.DenoiseAtSigma(z, sigma), z, NoiseSchedule.AlphaBarOfSigma(sigma));
    }

    /// <summary>Clamps x0 and recomputes ε, keeping a learned variance; the results leave the caller's dispose scope.</summary>
    private DenoiserOutput Project(DenoiserOutput inner, Tensor z, double alphaBar)
    {
        var x0 = inner.X0;
        var clamped = _clip is { } c ? x0.clamp(-c, c)
            : x0.clamp(tensor(_lower, dtype: x0.dtype, device: x0.device), tensor(_upper, dtype: x0.dtype, device: x0.device));
        var eps = PredictionConversion.EpsFromX0(clamped, z, tensor(alphaBar, dtype: z.dtype, device: z.device));
        return new DenoiserOutput(clamped.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope())
        {
            VarianceFraction = inner.VarianceFraction?.MoveToOuterDisposeScope(),
        };
    }
}
