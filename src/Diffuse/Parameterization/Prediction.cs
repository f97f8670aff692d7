using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Parameterization;

/// <summary>What the network predicts.</summary>
public enum Prediction
{
    /// <summary>The noise ε that was added (Ho et al. 2020, eq. 11).</summary>
    Epsilon,
    /// <summary>The clean data x0.</summary>
    X0,
    /// <summary>The velocity v = √ᾱ·ε − √(1 − ᾱ)·x0 (Salimans and Ho 2022, §4).</summary>
    V,
}

/// <summary>
/// The one place that converts between ε, x0 and v. With z = √ᾱ·x0 + √(1 − ᾱ)·ε (notation map: a = √ᾱ, b = √(1 − ᾱ),
/// a² + b² = 1): x0 = (z − b·ε)/a, ε = (z − a·x0)/b, v = a·ε − b·x0, x0 = a·z − b·v, ε = b·z + a·v.
/// Every tensor argument <c>alphaBar</c> broadcasts against the data (e.g. shape [B, 1] for data [B, D]).
/// </summary>
public static class PredictionConversion
{
    /// <summary>The training target for <paramref name="prediction"/> given the clean data and the noise.</summary>
    public static Tensor Target(Prediction prediction, Tensor x0, Tensor eps, Tensor alphaBar) => prediction switch
    {
        Prediction.Epsilon => eps.alias(),
        Prediction.X0 => x0.alias(),
        Prediction.V => alphaBar.sqrt() * eps - (1 - alphaBar).sqrt() * x0,
        _ => throw new ArgumentOutOfRangeException(nameof(prediction)),
    };

    /// <summary>Turns a network output of kind <paramref name="prediction"/> at noisy input z into estimates of x0 and ε.</summary>
    public static (Tensor X0, Tensor Eps) ToX0AndEps(Prediction prediction, Tensor output, Tensor z, Tensor alphaBar)
    {
        using var scope = NewDisposeScope();
        var a = alphaBar.sqrt();
        var b = (1 - alphaBar).sqrt();
        (Tensor x0, Tensor eps) = prediction switch
        {
            Prediction.Epsilon => ((z - b * output) / a, output.alias()),
            Prediction.X0 => (output.alias(), (z - a * output) / b),
            Prediction.V => (a * z - b * output, b * z + a * output),
            _ => throw new ArgumentOutOfRangeException(nameof(prediction)),
        };
        return (x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Throws a <see cref="DiffuseException"/> when <paramref name="prediction"/> cannot give x0 at every timestep of a
    /// schedule: under zero terminal SNR (ᾱ_T = 0, Lin et al. 2023) the last step is pure noise, z_T = ε, so an
    /// ε-prediction carries no information about x0 and x0 = (z − √(1 − ᾱ)·ε)/√ᾱ divides by zero.
    /// </summary>
    public static void RequireCompatible(Prediction prediction, bool zeroTerminalSnr)
    {
        if (zeroTerminalSnr && prediction == Prediction.Epsilon)
            throw new DiffuseException("zero terminal SNR cannot be used with ε-prediction: at the last timestep z = ε, so predicting ε says nothing about x0. Use v-prediction (Lin et al. 2023) or x0-prediction.");
    }

    /// <summary>The check of <see cref="RequireCompatible(Prediction, bool)"/> for a built schedule.</summary>
    public static void RequireCompatible(Prediction prediction, NoiseSchedule schedule) =>
        RequireCompatible(prediction, schedule.HasZeroTerminalSnr);

    /// <summary>ε implied by an x0 estimate at noisy input z: (z − √ᾱ·x0)/√(1 − ᾱ).</summary>
    public static Tensor EpsFromX0(Tensor x0, Tensor z, Tensor alphaBar) => (z - alphaBar.sqrt() * x0) / (1 - alphaBar).sqrt();

    /// <summary>
    /// Min-SNR-γ loss weight (Hang et al. 2023, §3.4) for an MSE on the given target, so that the effective x0 weight is
    /// min(SNR, γ): ε-target min(SNR, γ)/SNR, x0-target min(SNR, γ), v-target min(SNR, γ)/(SNR + 1).
    /// </summary>
    public static Tensor MinSnrWeight(Prediction prediction, Tensor snr, double gamma)
    {
        var clipped = snr.clamp(max: gamma);
        return prediction switch
        {
            Prediction.Epsilon => clipped / snr,
            Prediction.X0 => clipped,
            Prediction.V => clipped / (snr + 1),
            _ => throw new ArgumentOutOfRangeException(nameof(prediction)),
        };
    }
}
