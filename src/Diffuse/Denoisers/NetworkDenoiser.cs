using Diffuse.Parameterization;
using Diffuse.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Denoisers;

/// <summary>
/// Adapts a trained network that maps (z_t, timestep index) to an ε, x0 or v prediction into an <see cref="IDenoiser"/>,
/// through the one conversion core <see cref="PredictionConversion"/>.
/// </summary>
public sealed class NetworkDenoiser : IDenoiser
{
    private readonly nn.Module<Tensor, Tensor, Tensor> _network;
    private readonly NoiseSchedule _schedule;
    private readonly Prediction _prediction;

    /// <summary>Wraps <paramref name="network"/>, trained to predict <paramref name="prediction"/> under <paramref name="schedule"/>.</summary>
    public NetworkDenoiser(nn.Module<Tensor, Tensor, Tensor> network, NoiseSchedule schedule, Prediction prediction)
    {
        _network = network;
        _schedule = schedule;
        _prediction = prediction;
    }

    /// <inheritdoc />
    public DenoiserOutput Denoise(Tensor z, int timestep)
    {
        using var scope = NewDisposeScope();
        var t = full(z.shape[0], (float)timestep, dtype: ScalarType.Float32);
        var output = _network.call(z, t);
        var (x0, eps) = PredictionConversion.ToX0AndEps(_prediction, output, z, tensor(_schedule.AlphaBar(timestep), dtype: z.dtype));
        return new DenoiserOutput(x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
    }
}
