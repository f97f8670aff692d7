using Diffuse.Parameterization;
using Diffuse.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Denoisers;

/// <summary>
/// Adapts a trained network that maps (z_t, timestep index) to an ε, x0 or v prediction into an <see cref="IDenoiser"/>,
/// through the one conversion core <see cref="PredictionConversion"/>. At a noise level between trained timesteps the
/// network gets the fractional timestep of <see cref="NoiseSchedule.TimestepOfSigma"/> (its time embedding is continuous)
/// and the conversion uses the input's true ᾱ = 1/(1 + σ²).
/// </summary>
public sealed class NetworkDenoiser : IDenoiser, ISigmaDenoiser
{
    private readonly nn.Module<Tensor, Tensor, Tensor> _network;
    private readonly NoiseSchedule _schedule;
    private readonly Prediction _prediction;

    /// <summary>Wraps <paramref name="network"/>, trained to predict <paramref name="prediction"/> under <paramref name="schedule"/>.</summary>
    public NetworkDenoiser(nn.Module<Tensor, Tensor, Tensor> network, NoiseSchedule schedule, Prediction prediction)
    {
        PredictionConversion.RequireCompatible(prediction, schedule);
        _network = network;
        _schedule = schedule;
        _prediction = prediction;
    }

    /// <inheritdoc />
    public DenoiserOutput Denoise(Tensor z, int timestep) => Run(z, timestep, _schedule.AlphaBar(timestep));

    /// <inheritdoc />
    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma) =>
        Run(z, _schedule.TimestepOfSigma(sigma), NoiseSchedule.AlphaBarOfSigma(sigma));

    private DenoiserOutput Run(Tensor z, double timestep, double alphaBar)
    {
        using var scope = NewDisposeScope();
        var t = full(z.shape[0], (float)timestep, dtype: ScalarType.Float32);
        var output = _network.call(z, t);
        var (x0, eps) = PredictionConversion.ToX0AndEps(_prediction, output, z, tensor(alphaBar, dtype: z.dtype));
        return new DenoiserOutput(x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
    }
}
