namespace Diffuse.Schedules;

/// <summary>Describes a noise schedule; saved with every checkpoint.</summary>
/// <param name="Kind">The schedule family.</param>
/// <param name="Timesteps">Number of diffusion steps T.</param>
/// <param name="Betas">β_1 … β_T when <paramref name="Kind"/> is <see cref="ScheduleKind.Custom"/>; otherwise null.</param>
/// <param name="ZeroTerminalSnr">
/// Rescale β so that ᾱ_T = 0 (Lin et al. 2023, Algorithm 1; see <see cref="NoiseSchedule.WithZeroTerminalSnr"/>); needs
/// x0- or v-prediction.
/// </param>
public sealed record ScheduleConfig(ScheduleKind Kind = ScheduleKind.Linear, int Timesteps = 1000, double[]? Betas = null,
    bool ZeroTerminalSnr = false)
{
    /// <summary>Throws a <see cref="DiffuseException"/> naming the first inconsistency.</summary>
    public void Validate()
    {
        if (Kind == ScheduleKind.Custom)
        {
            if (Betas is null || Betas.Length == 0) throw new DiffuseException("a custom schedule needs a β array.");
            if (Betas.Length != Timesteps)
                throw new DiffuseException($"the custom β array has {Betas.Length} entries but the schedule has {Timesteps} timesteps.");
        }
        else if (Betas is not null)
        {
            throw new DiffuseException($"a β array is only used with the custom schedule, not with '{Kind}'.");
        }
        if (Timesteps < 1) throw new DiffuseException($"the number of timesteps must be at least 1 (got {Timesteps}).");
        ConfigLimits.Require(Param.Of("ScheduleConfig.Timesteps"), Timesteps, 1, ConfigLimits.MaxTimesteps);
        if (ZeroTerminalSnr && Timesteps < 2) throw new DiffuseException("zero terminal SNR needs at least two timesteps.");
    }
}
