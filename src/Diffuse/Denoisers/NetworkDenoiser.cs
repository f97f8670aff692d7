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
/// and the conversion uses the input's true ᾱ = 1/(1 + σ²). A class-conditional network is also an
/// <see cref="IConditionalDenoiser"/> (label −1 or the network's null class means unconditional), which
/// <see cref="ClassifierFreeGuidance"/> drives; the plain <see cref="IDenoiser"/> calls are unconditional.
/// </summary>
public sealed class NetworkDenoiser : IDenoiser, ISigmaDenoiser, IConditionalDenoiser
{
    private readonly DiffusionNetwork _network;
    private readonly NoiseSchedule _schedule;
    private readonly Prediction _prediction;

    /// <summary>Wraps <paramref name="network"/>, trained to predict <paramref name="prediction"/> under <paramref name="schedule"/>.</summary>
    public NetworkDenoiser(DiffusionNetwork network, NoiseSchedule schedule, Prediction prediction)
    {
        PredictionConversion.RequireCompatible(prediction, schedule);
        _network = network;
        _schedule = schedule;
        _prediction = prediction;
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
        var t = full(z.shape[0], (float)timestep, dtype: ScalarType.Float32);
        if (classes is not null)
        {
            if (_network.ClassCount == 0) throw new DiffuseException("class labels were given, but this model was trained without classes.");
            // −1 is the guidance decorator's "unconditional"; the network's own null class is its last embedding row.
            classes = where(classes.lt(0), full_like(classes, _network.NullClass), classes);
        }
        var output = _network.call(z, t, classes);
        var (x0, eps) = PredictionConversion.ToX0AndEps(_prediction, output, z, tensor(alphaBar, dtype: z.dtype));
        return new DenoiserOutput(x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
    }
}
