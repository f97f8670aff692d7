using Diffuse.Parameterization;
using Diffuse.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Denoisers;

/// <summary>
/// A network trained in the EDM formulation (Karras et al. 2022, eq. 7 with Table 1) as a denoiser:
/// D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ)) on the variance-exploding state x. Samplers hand it the
/// variance-preserving state z = √ᾱ·x = x/√(1 + σ²) (see <see cref="ISigmaDenoiser"/>), so it reads x = z/√ᾱ; ε comes from
/// the conversion core. At a discrete timestep n it works at the schedule's σ_n (see <see cref="EdmConfig.Schedule"/>).
/// With a class-conditional network it is an <see cref="IConditionalDenoiser"/>, so <see cref="ClassifierFreeGuidance"/> applies.
/// </summary>
public sealed class EdmDenoiser : IDenoiser, ISigmaDenoiser, IConditionalDenoiser
{
    private readonly ConditionedNetwork _network;
    private readonly NoiseSchedule _schedule;
    private readonly double _sigmaData;

    /// <summary>Wraps a raw network F (input, c_noise per row [B]) → output trained with <paramref name="config"/>.</summary>
    public EdmDenoiser(nn.Module<Tensor, Tensor, Tensor> network, NoiseSchedule schedule, EdmConfig config)
        : this(ConditionedNetwork.Unconditional(network), schedule, config) { }

    /// <summary>Wraps a raw network F, with or without class conditioning, trained with <paramref name="config"/>.</summary>
    public EdmDenoiser(ConditionedNetwork network, NoiseSchedule schedule, EdmConfig config)
    {
        config.Validate();
        if (schedule.HasZeroTerminalSnr)
            throw new DiffuseException("an EDM network is conditioned on ln σ and cannot be evaluated at σ = ∞: use a schedule without zero terminal SNR (e.g. EdmConfig.Schedule).");
        _network = network;
        _schedule = schedule;
        _sigmaData = config.SigmaData;
    }

    /// <inheritdoc />
    public DenoiserOutput Denoise(Tensor z, int timestep) => Run(z, _schedule.Sigma(timestep), _schedule.AlphaBar(timestep), null);

    /// <inheritdoc />
    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma) => Run(z, sigma, NoiseSchedule.AlphaBarOfSigma(sigma), null);

    /// <inheritdoc />
    public DenoiserOutput Denoise(Tensor z, int timestep, Tensor? classes) =>
        Run(z, _schedule.Sigma(timestep), _schedule.AlphaBar(timestep), classes);

    /// <inheritdoc />
    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma, Tensor? classes) =>
        Run(z, sigma, NoiseSchedule.AlphaBarOfSigma(sigma), classes);

    private DenoiserOutput Run(Tensor z, double sigma, double alphaBar, Tensor? classes)
    {
        if (!(sigma > 0) || double.IsPositiveInfinity(sigma))
            throw new DiffuseException($"an EDM network needs a noise level 0 < σ < ∞ (got {sigma}).");
        using var scope = NewDisposeScope();
        var x = z * (1 / Math.Sqrt(alphaBar));   // x = z/√ᾱ
        var sigmas = full(z.shape[0], sigma, dtype: ScalarType.Float64, device: z.device);
        var (input, conditioning) = EdmPreconditioning.NetworkInputs(x, sigmas, _sigmaData);
        var x0 = EdmPreconditioning.Denoised(x, _network.Call(input, conditioning, classes), sigmas, _sigmaData);
        var eps = PredictionConversion.EpsFromX0(x0, z, tensor(alphaBar, dtype: z.dtype, device: z.device));
        return new DenoiserOutput(x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
    }
}
