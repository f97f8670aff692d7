using Diffuse.Models;
using Diffuse.Parameterization;
using Diffuse.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Denoisers;

/// <summary>
/// Adapts a trained network that maps (z_t, timestep index) to an ε, x0 or v prediction into an <see cref="IDenoiser"/>,
/// through the one conversion core <see cref="PredictionConversion"/>. At a noise level between trained timesteps the
/// network gets the fractional timestep of <see cref="NoiseSchedule.TimestepOfSigma"/> (its time embedding is continuous)
/// and the conversion uses the input's true ᾱ = 1/(1 + σ²). A network that learns its variance (Nichol and Dhariwal
/// 2021, §3.1) outputs twice the input's channels: the first half is the prediction, the second the raw variance output
/// v, returned as the interpolation fraction f = (v + 1)/2 in <see cref="DenoiserOutput.VarianceFraction"/>. With a
/// class-conditional network it is an <see cref="IConditionalDenoiser"/>, so <see cref="ClassifierFreeGuidance"/> applies.
/// </summary>
public sealed class NetworkDenoiser : IDenoiser, ISigmaDenoiser, IConditionalDenoiser
{
    private readonly ConditionedNetwork _network;
    private readonly NoiseSchedule _schedule;
    private readonly Prediction _prediction;
    private readonly bool _learnedVariance;

    /// <summary>
    /// Wraps <paramref name="network"/>, trained to predict <paramref name="prediction"/> under <paramref name="schedule"/>;
    /// with <paramref name="learnedVariance"/> its output also carries the variance (twice the input's channels).
    /// </summary>
    public NetworkDenoiser(nn.Module<Tensor, Tensor, Tensor> network, NoiseSchedule schedule, Prediction prediction, bool learnedVariance = false)
        : this(ConditionedNetwork.Unconditional(network), schedule, prediction, learnedVariance) { }

    /// <summary>
    /// Wraps one of Diffuse's networks (an MLP or a U-Net, class-conditional or not); otherwise as the constructor above.
    /// </summary>
    public NetworkDenoiser(DiffusionNetwork network, NoiseSchedule schedule, Prediction prediction, bool learnedVariance = false)
        : this(ConditionedNetwork.From(network), schedule, prediction, learnedVariance) { }

    /// <summary>Wraps a network with or without class conditioning (see <see cref="ConditionedNetwork"/>); otherwise as the constructor above.</summary>
    public NetworkDenoiser(ConditionedNetwork network, NoiseSchedule schedule, Prediction prediction, bool learnedVariance = false)
    {
        PredictionConversion.RequireCompatible(prediction, schedule);
        _network = network;
        _schedule = schedule;
        _prediction = prediction;
        _learnedVariance = learnedVariance;
    }

    /// <inheritdoc />
    public DenoiserOutput Denoise(Tensor z, int timestep) => Run(z, timestep, _schedule.AlphaBar(timestep), null);

    /// <inheritdoc />
    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma) =>
        Run(z, _schedule.TimestepOfSigma(sigma), NoiseSchedule.AlphaBarOfSigma(sigma), null);

    /// <inheritdoc />
    public DenoiserOutput Denoise(Tensor z, int timestep, Tensor? classes) => Run(z, timestep, _schedule.AlphaBar(timestep), classes);

    /// <inheritdoc />
    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma, Tensor? classes) =>
        Run(z, _schedule.TimestepOfSigma(sigma), NoiseSchedule.AlphaBarOfSigma(sigma), classes);

    private DenoiserOutput Run(Tensor z, double timestep, double alphaBar, Tensor? classes)
    {
        using var scope = NewDisposeScope();
        var t = full(z.shape[0], (float)timestep, dtype: ScalarType.Float32, device: z.device);
        var output = _network.Call(z, t, classes);
        Tensor? fraction = null;
        if (_learnedVariance)
        {
            (output, var v) = LearnedVariance.Split(output, z.shape[1]);
            fraction = LearnedVariance.Fraction(v).MoveToOuterDisposeScope();
        }
        var (x0, eps) = PredictionConversion.ToX0AndEps(_prediction, output, z, tensor(alphaBar, dtype: z.dtype, device: z.device));
        return new DenoiserOutput(x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope()) { VarianceFraction = fraction };
    }
}
